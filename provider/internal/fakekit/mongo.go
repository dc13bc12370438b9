package fakekit

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
)

// Mongo returns MongoDB's query semantics on what encoding/json decodes
// (criteria and documents as Map, nested objects as map[string]any), with
// only the field operators ops, among $eq $ne $gt $gte $lt $lte $in $nin
// $all $regex $options $not, evaluated:
//   - a dotted path walks into objects; a missing field is null;
//   - equality compares numbers by value and anything else as JSON; an
//     array field equals a value when one of its elements does;
//   - $gt and friends compare numbers with numbers and strings with
//     strings (by bytes), an array field by any element, else nothing;
//   - $regex is Go's regexp on strings, case-insensitive with $options i;
//   - an operator object has only $ keys; $and, $or and $nor read a
//     non-list as an empty list.
func Mongo(ops ...string) *Dialect {
	d := &Dialect{
		Object:     mapObject,
		Lookup:     mapLookup,
		Operators:  onlyOperators,
		Equal:      func(val any, _ bool, want any) bool { return mongoEqual(val, want) },
		Ops:        map[string]Op{},
		LooseLogic: true,
	}
	compare := func(holds func(c int) bool) Op {
		return func(val any, _ bool, arg any, _ Object) bool { return mongoCompare(val, arg, holds) }
	}
	all := map[string]Op{
		"$eq":      func(val any, _ bool, arg any, _ Object) bool { return mongoEqual(val, arg) },
		"$ne":      func(val any, _ bool, arg any, _ Object) bool { return !mongoEqual(val, arg) },
		"$gt":      compare(func(c int) bool { return c > 0 }),
		"$gte":     compare(func(c int) bool { return c >= 0 }),
		"$lt":      compare(func(c int) bool { return c < 0 }),
		"$lte":     compare(func(c int) bool { return c <= 0 }),
		"$in":      func(val any, _ bool, arg any, _ Object) bool { return mongoIn(val, arg) },
		"$nin":     func(val any, _ bool, arg any, _ Object) bool { return !mongoIn(val, arg) },
		"$all":     func(val any, _ bool, arg any, _ Object) bool { return mongoAll(val, arg) },
		"$regex":   mongoRegex,
		"$options": func(any, bool, any, Object) bool { return true }, // read by $regex
		"$not":     func(val any, exists bool, arg any, _ Object) bool { return !d.Field(val, exists, arg) },
	}
	for _, op := range ops {
		if eval, ok := all[op]; ok {
			d.Ops[op] = eval
		}
	}
	return d
}

func mapObject(v any) (Object, bool) {
	m, ok := v.(map[string]any)
	return Map(m), ok
}

func mapLookup(doc Object, path string) (any, bool) {
	m, _ := doc.(Map)
	var cur any = map[string]any(m)
	for _, p := range strings.Split(path, ".") {
		o, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = o[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// onlyOperators: a non-empty object whose keys all begin with $.
func onlyOperators(cond Object) bool {
	keys := cond.Keys()
	for _, k := range keys {
		if !strings.HasPrefix(k, "$") {
			return false
		}
	}
	return len(keys) > 0
}

// mongoEqual is equality, where an array field matches when one of its
// elements (or the array itself) equals want.
func mongoEqual(val, want any) bool {
	if list, ok := val.([]any); ok {
		for _, e := range list {
			if scalarEqual(e, want) {
				return true
			}
		}
	}
	return scalarEqual(val, want)
}

func scalarEqual(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// mongoCompare orders val (any element of an array) against arg: numbers
// with numbers, strings with strings.
func mongoCompare(val, arg any, holds func(c int) bool) bool {
	if list, ok := val.([]any); ok {
		for _, e := range list {
			if mongoCompare(e, arg, holds) {
				return true
			}
		}
		return false
	}
	if fa, ok := number(val); ok {
		fb, ok := number(arg)
		return ok && holds(compareFloat(fa, fb))
	}
	sa, ok1 := val.(string)
	sb, ok2 := arg.(string)
	return ok1 && ok2 && holds(strings.Compare(sa, sb))
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// mongoIn reports whether val equals one of the list arg.
func mongoIn(val, arg any) bool {
	list, _ := arg.([]any)
	for _, e := range list {
		if mongoEqual(val, e) {
			return true
		}
	}
	return false
}

// mongoAll reports whether val equals every one of the list arg.
func mongoAll(val, arg any) bool {
	list, _ := arg.([]any)
	for _, e := range list {
		if !mongoEqual(val, e) {
			return false
		}
	}
	return true
}

func mongoRegex(val any, _ bool, arg any, cond Object) bool {
	pat, _ := arg.(string)
	if o, _ := cond.Get("$options"); o != nil {
		if opts, _ := o.(string); strings.Contains(opts, "i") {
			pat = "(?i)" + pat
		}
	}
	re, err := regexp.Compile(pat)
	s, isStr := val.(string)
	return err == nil && isStr && re.MatchString(s)
}
