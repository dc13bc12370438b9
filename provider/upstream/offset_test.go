package upstream

import (
	"errors"
	"testing"

	"github.com/keygate/keygate/provider"
)

func TestOffset(t *testing.T) {
	tests := []struct {
		q           provider.ListQuery
		limit, skip int
		bad         bool
	}{
		{provider.ListQuery{}, 20, 0, false},
		{provider.ListQuery{Limit: 5, Cursor: "40"}, 5, 40, false},
		{provider.ListQuery{Limit: 500}, 100, 0, false},
		{provider.ListQuery{Cursor: "-1"}, 0, 0, true},
		{provider.ListQuery{Cursor: "abc"}, 0, 0, true},
	}
	for _, tc := range tests {
		limit, skip, err := Offset(tc.q, 20, 100)
		var fe *provider.FieldError
		if limit != tc.limit || skip != tc.skip || (err != nil) != tc.bad || (tc.bad && (!errors.As(err, &fe) || fe.Field != "cursor")) {
			t.Errorf("Offset(%+v) = %d, %d, %v", tc.q, limit, skip, err)
		}
	}
}
