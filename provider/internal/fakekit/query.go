package fakekit

import (
	"maps"
	"slices"
)

// Object is a JSON object as a fake holds it: its keys, in order, and
// their values.
type Object interface {
	Keys() []string
	Get(key string) (any, bool)
}

// Map is a JSON object decoded by encoding/json as an Object. A Go map
// has no order, so its keys come sorted.
type Map map[string]any

// Keys returns the keys, sorted.
func (m Map) Keys() []string { return slices.Sorted(maps.Keys(m)) }

// Get returns the value of key.
func (m Map) Get(key string) (any, bool) { v, ok := m[key]; return v, ok }

// Op evaluates one operator of a field's condition: val is the field's
// value (exists is false when the document lacks the field), arg the
// operand, and cond the whole operator object (for $options).
type Op func(val any, exists bool, arg any, cond Object) bool

// Dialect is how one platform evaluates Mongo-style criteria. The walk is
// the same everywhere: every key of the criteria must hold; $and, $or and
// $nor take a list of criteria (all, at least one, none of them must
// hold); any other key is a field path, whose condition is an operator
// object ({"$gt": 1}) or a value to equal. What differs between platforms
// are the fields below.
type Dialect struct {
	// Object reads v as a JSON object: criteria, an operator object.
	Object func(v any) (Object, bool)
	// Lookup reads the value at a field's path in a document.
	Lookup func(doc Object, path string) (val any, exists bool)
	// Operators reports whether a condition object holds operators, not
	// a value to equal.
	Operators func(cond Object) bool
	// Equal is an implicit equality, {"field": want}.
	Equal func(val any, exists bool, want any) bool
	// Ops are the operators the platform evaluates; any other one fails
	// the condition.
	Ops map[string]Op
	// Condition evaluates an operator object on a field; nil: every
	// operator in it holds (AllOps).
	Condition func(val any, exists bool, cond Object) bool
	// EmptyListIsCriteria reads an empty list among the criteria of $and,
	// $or and $nor as empty criteria, which every document meets, rather
	// than as criteria none meets.
	EmptyListIsCriteria bool
	// LooseLogic reads an operand of $and, $or or $nor that is not a list
	// as an empty list, rather than failing the match.
	LooseLogic bool
}

// Match reports whether doc meets criteria.
func (d *Dialect) Match(doc, criteria Object) bool {
	for _, k := range criteria.Keys() {
		v, _ := criteria.Get(k)
		var ok bool
		switch k {
		case "$and", "$or", "$nor":
			ok = d.logic(doc, k, v)
		default:
			val, exists := d.Lookup(doc, k)
			ok = d.Field(val, exists, v)
		}
		if !ok {
			return false
		}
	}
	return true
}

func (d *Dialect) logic(doc Object, op string, v any) bool {
	list, isList := v.([]any)
	if !isList && !d.LooseLogic {
		return false
	}
	n := 0
	for _, sub := range list {
		if d.matchSub(doc, sub) {
			n++
		}
	}
	switch op {
	case "$and":
		return n == len(list)
	case "$or":
		return n > 0
	}
	return n == 0
}

func (d *Dialect) matchSub(doc Object, sub any) bool {
	if o, ok := d.Object(sub); ok {
		return d.Match(doc, o)
	}
	list, isList := sub.([]any)
	return d.EmptyListIsCriteria && isList && len(list) == 0
}

// Field reports whether a field's value meets cond: an operator object,
// or a value to equal.
func (d *Dialect) Field(val any, exists bool, cond any) bool {
	o, ok := d.Object(cond)
	if !ok || !d.Operators(o) {
		return d.Equal(val, exists, cond)
	}
	if d.Condition != nil {
		return d.Condition(val, exists, o)
	}
	return d.AllOps(val, exists, o)
}

// AllOps reports whether every operator of cond holds; an operator the
// platform does not evaluate fails.
func (d *Dialect) AllOps(val any, exists bool, cond Object) bool {
	for _, op := range cond.Keys() {
		arg, _ := cond.Get(op)
		eval, known := d.Ops[op]
		if !known || !eval(val, exists, arg, cond) {
			return false
		}
	}
	return true
}
