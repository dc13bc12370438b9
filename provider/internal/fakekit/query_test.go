package fakekit

import (
	"encoding/json"
	"testing"
)

var everyOp = []string{"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$all", "$regex", "$options", "$not"}

func criteria(t *testing.T, s string) Map {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

func TestMongo(t *testing.T) {
	doc := criteria(t, `{"title":"Hello","views":42,"tags":["a","b"],"meta":{"author":"ada"},"none":null}`)
	tests := []struct {
		q    string
		want bool
	}{
		{`{}`, true},
		{`{"title":"Hello"}`, true},
		{`{"title":"hello"}`, false},
		{`{"meta.author":"ada"}`, true},
		{`{"meta.author":{"$ne":"bob"}}`, true},
		{`{"meta.author.x":"ada"}`, false},
		{`{"missing":null}`, true},
		{`{"none":null}`, true},
		{`{"tags":"a"}`, true},
		{`{"tags":["a","b"]}`, true},
		{`{"tags":{"$in":["z","b"]}}`, true},
		{`{"tags":{"$nin":["a"]}}`, false},
		{`{"tags":{"$all":["a","b"]}}`, true},
		{`{"tags":{"$all":["a","c"]}}`, false},
		{`{"views":{"$gt":10,"$lte":42}}`, true},
		{`{"views":{"$lt":42}}`, false},
		{`{"views":{"$gt":"10"}}`, false},
		{`{"title":{"$gte":"H"}}`, true},
		{`{"title":{"$regex":"^hel","$options":"i"}}`, true},
		{`{"title":{"$regex":"^hel"}}`, false},
		{`{"views":{"$regex":"4"}}`, false},
		{`{"views":{"$not":{"$gt":50}}}`, true},
		{`{"views":{"$not":42}}`, false},
		{`{"title":{"$where":"1"}}`, false},
		{`{"title":{"$eq":"Hello","x":1}}`, false},
		{`{"$or":[{"title":"x"},{"views":42}]}`, true},
		{`{"$or":[]}`, false},
		{`{"$and":[]}`, true},
		{`{"$nor":[{"title":"Hello"}]}`, false},
		{`{"$nor":[{"title":"x"}]}`, true},
		{`{"$and":"junk"}`, true},
		{`{"$or":"junk"}`, false},
		{`{"$and":[[]]}`, false},
	}
	d := Mongo(everyOp...)
	for _, tc := range tests {
		if got := d.Match(doc, criteria(t, tc.q)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.q, got, tc.want)
		}
	}
}

// An operator the platform does not list matches nothing.
func TestMongoOnlyListedOperators(t *testing.T) {
	doc := criteria(t, `{"views":42}`)
	d := Mongo("$eq")
	if !d.Match(doc, criteria(t, `{"views":{"$eq":42}}`)) || d.Match(doc, criteria(t, `{"views":{"$ne":1}}`)) {
		t.Error("Mongo(\"$eq\") evaluates other operators")
	}
}

// The options a platform sets: empty lists as criteria, strict logic
// operands, its own condition.
func TestDialectOptions(t *testing.T) {
	doc := criteria(t, `{"n":1}`)
	d := Mongo(everyOp...)
	d.EmptyListIsCriteria, d.LooseLogic = true, false
	for q, want := range map[string]bool{`{"$and":[[]]}`: true, `{"$or":[[]]}`: true, `{"$and":"junk"}`: false, `{"$nor":{}}`: false} {
		if got := d.Match(doc, criteria(t, q)); got != want {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
	var saw []string
	d.Condition = func(val any, exists bool, cond Object) bool {
		saw = append(saw, cond.Keys()...)
		return exists
	}
	if !d.Match(doc, criteria(t, `{"n":{"$b":1,"$a":2}}`)) || d.Match(doc, criteria(t, `{"m":{"$a":1}}`)) {
		t.Error("Condition was not used")
	}
	if len(saw) != 3 || saw[0] != "$a" || saw[1] != "$b" {
		t.Errorf("Condition saw %v", saw)
	}
}
