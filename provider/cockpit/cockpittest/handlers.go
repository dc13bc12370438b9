package cockpittest

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// The rules below cite docs/providers/cockpit.md by id (A1, R3, ...).

// cors sets the CORS headers Cockpit puts on every /api answer, debug mode
// off (M1).
func cors(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Max-Age", "1000")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Origin, Cache-Control, Pragma, Authorization, Accept, Accept-Encoding, API-KEY")
	h.Set("Access-Control-Allow-Methods", "PUT, POST, GET, OPTIONS, DELETE")
	h.Set("Access-Control-Expose-Headers", "false")
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writePHPJSON(w http.ResponseWriter, status int, v any) { writeRaw(w, status, encodePHP(v)) }

func pairs(kv ...any) *object {
	o := newObject()
	for i := 0; i+1 < len(kv); i += 2 {
		o.set(kv[i].(string), kv[i+1])
	}
	return o
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writePHPJSON(w, status, pairs("error", msg))
}

// empty404 is Cockpit's "handler returned false": 404, empty, text/html
// (R4).
func empty404(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(http.StatusNotFound)
}

var jwtShape = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)

// caller is who a token authenticates as.
type caller struct {
	role   *string
	userID any // nil for API keys
}

// params merges the query, a form body and a JSON body into one set of
// request parameters, later sources winning, as Lime's Request does
// (M3). A JSON body is decoded only when it is an object.
func params(r *http.Request, raw []byte) *object {
	p := newObject()
	for k, v := range r.URL.Query() {
		p.set(k, v[len(v)-1]) // PHP keeps the last of repeated keys
	}
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	switch {
	case strings.Contains(ct, "application/json"):
		if body, err := decodeJSON(string(raw), false); err == nil && phpTruthy(body) {
			if o, ok := body.(*object); ok {
				for _, k := range o.keys {
					p.set(k, o.vals[k])
				}
			}
		}
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		form, _ := url.ParseQuery(string(raw))
		for k, v := range form {
			if inner, ok := strings.CutPrefix(k, "data["); ok && strings.HasSuffix(inner, "]") {
				data, _ := p.vals["data"].(*object)
				if data == nil {
					data = newObject()
					p.set("data", data)
				}
				data.set(strings.TrimSuffix(inner, "]"), v[len(v)-1])
				continue
			}
			p.set(k, v[len(v)-1])
		}
	}
	return p
}

// token picks the key: param api_key, else header api-key, else Bearer;
// an empty one is the "public" key (A1).
func token(r *http.Request, p *object) string {
	tok := ""
	if v, ok := p.get("api_key"); ok && v != nil {
		tok = phpString(v)
	} else if v := r.Header.Values("api-key"); len(v) > 0 {
		tok = v[0]
	} else if v, ok := strings.CutPrefix(strings.TrimSpace(r.Header.Get("Authorization")), "Bearer "); ok {
		tok = strings.TrimSpace(v)
	}
	if tok == "" || tok == "0" {
		return "public"
	}
	return tok
}

// authenticate applies Cockpit's key rules (A2-A4); ok false means 412.
func (s *Server) authenticate(tok string) (caller, bool) {
	switch {
	case tok != "public" && strings.HasPrefix(tok, "USR-"):
		for _, u := range s.users {
			if u.apiKey == tok {
				role := u.role
				return caller{role: &role, userID: u.id}, true
			}
		}
		return caller{}, false
	case tok != "public" && jwtShape.MatchString(tok):
		return caller{}, true // the "todo" branch: anonymous, no role
	}
	role, ok := s.keys[tok]
	if !ok {
		return caller{}, false
	}
	return caller{role: role}, true
}

func (s *Server) allowed(c caller, perm string) bool {
	if c.role == nil {
		return false
	}
	if *c.role == "admin" {
		return true
	}
	return s.roles[*c.role][perm]
}

var (
	reItems    = regexp.MustCompile(`^/content/items/([^/]+)$`)
	reItem     = regexp.MustCompile(`^/content/item/([^/]+)$`)
	reItemByID = regexp.MustCompile(`^/content/item/([^/]+)/([^/]+)$`)
)

func (s *Server) route(w http.ResponseWriter, r *http.Request, raw []byte) {
	path, isAPI := strings.CutPrefix(r.URL.Path, "/api")
	if !isAPI || (path != "" && !strings.HasPrefix(path, "/")) {
		empty404(w)
		return
	}
	cors(w)
	if r.Method == http.MethodOptions {
		// A preflight: 200 with an empty body and no authentication (M2).
		// Not reproduced: the reason phrase "OK CORS".
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusOK)
		return
	}
	if path == "/system/healthcheck" && r.Method == http.MethodGet {
		w.Header().Set("Cache-Control", "no-store, no-cache, must-revalidate")
		w.Header().Set("X-Health-Checks", "db, memory, fs, redis, smtp, custom")
		if s.unhealthy {
			writePHPJSON(w, http.StatusInternalServerError, pairs("status", "error", "message", "Enable debug mode to see detailed error messages"))
			return
		}
		writePHPJSON(w, http.StatusOK, pairs("status", "ok"))
		return
	}
	p := params(r, raw)
	// The rspc cache runs before authentication (M5).
	cacheKey := ""
	if r.Method == http.MethodGet && r.URL.Query().Get("rspc") == "1" {
		q := r.URL.Query()
		q.Del("api_key")
		cacheKey = path + "?" + q.Encode()
		if body, ok := s.cache[cacheKey]; ok {
			w.Header().Set("APP_RSP_CACHE", "true")
			writeRaw(w, http.StatusOK, body)
			return
		}
	}
	// Authentication comes before routing: a bad key on an unknown route
	// is 412 (A6).
	c, ok := s.authenticate(token(r, p))
	if !ok {
		apiError(w, http.StatusPreconditionFailed, "Authentication failed")
		return
	}
	if cacheKey != "" {
		rec := httptest.NewRecorder()
		s.content(rec, r, path, p, c)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if rec.Code == http.StatusOK {
			s.cache[cacheKey] = rec.Body.Bytes()
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	s.content(w, r, path, p, c)
}

func (s *Server) content(w http.ResponseWriter, r *http.Request, path string, p *object, c caller) {
	switch m := r.Method; {
	case m == http.MethodGet && path == "/content/items":
		s.multi(w, p, c)
	case m == http.MethodGet && reItems.MatchString(path):
		s.list(w, reItems.FindStringSubmatch(path)[1], p, c)
	case m == http.MethodGet && reItem.MatchString(path):
		s.first(w, reItem.FindStringSubmatch(path)[1], p, c)
	case m == http.MethodPost && reItem.MatchString(path):
		s.save(w, reItem.FindStringSubmatch(path)[1], p, c)
	case m == http.MethodGet && reItemByID.MatchString(path):
		sm := reItemByID.FindStringSubmatch(path)
		s.getByID(w, sm[1], sm[2], p, c)
	case m == http.MethodDelete && reItemByID.MatchString(path):
		sm := reItemByID.FindStringSubmatch(path)
		s.remove(w, sm[1], sm[2], c)
	default:
		empty404(w) // PUT, PATCH and unknown routes (R7)
	}
}

// modelFor checks the model exists, then that the caller may perm it
// (R2): 404 "Model <m> not found" or 403 "Permission denied".
func (s *Server) modelFor(w http.ResponseWriter, name, perm string, c caller) *Model {
	md := s.model(name)
	if md == nil {
		apiError(w, http.StatusNotFound, fmt.Sprintf("Model <%s> not found", name))
		return nil
	}
	if !s.allowed(c, fmt.Sprintf("content/%s/%s", name, perm)) {
		apiError(w, http.StatusForbidden, "Permission denied")
		return nil
	}
	return md
}

// jsonParam decodes a JSON5 parameter (Q1). present is false when the
// parameter is absent (or, with truthyOnly, falsy); ok is false after
// writing Cockpit's 400.
func jsonParam(w http.ResponseWriter, p *object, name string, truthyOnly bool) (v any, present, ok bool) {
	raw, has := p.get(name)
	if !has || raw == nil || truthyOnly && !phpTruthy(raw) {
		return nil, false, true
	}
	str, isStr := raw.(string)
	if !isStr {
		return raw, true, true // already decoded (a JSON body)
	}
	v, err := decodeJSON(str, true)
	if err != nil {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("<%s> is not valid json", name))
		return nil, false, false
	}
	return v, true, true
}

// phpInt is PHP's (int) cast of a parameter: the leading number of a
// string, 0 when there is none.
func phpInt(v any) int {
	switch t := v.(type) {
	case float64:
		return clampInt(t)
	case bool:
		if t {
			return 1
		}
	case string:
		if m := leadingNumber.FindString(strings.TrimLeft(t, " \t\n\r\v\f")); m != "" {
			f, _ := strconv.ParseFloat(m, 64)
			return clampInt(f)
		}
	}
	return 0
}

var leadingNumber = regexp.MustCompile(`^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?`)

func clampInt(f float64) int {
	switch {
	case math.IsNaN(f):
		return 0
	case f > math.MaxInt32:
		return math.MaxInt32
	case f < math.MinInt32:
		return math.MinInt32
	}
	return int(f)
}

// findOptions is a query on one model, as Content::items passes it to
// MongoLite.
type findOptions struct {
	filter      *object
	sort        []sortField
	fields      *object
	limit, skip int
}

// publishedFilter is the filter with _state 1 set, as the API does before
// every read (R1): appended, or replaced in place.
func publishedFilter(f any) *object {
	o, ok := f.(*object)
	if !ok {
		o = newObject()
	} else {
		o = o.clone()
	}
	o.set("_state", 1.0)
	return o
}

// query returns the page and the total count of a collection's matches.
func (s *Server) query(model string, o findOptions) ([]*object, int) {
	var all []*object
	for _, d := range s.items[model] {
		if matches(d, o.filter) {
			all = append(all, d)
		}
	}
	sortDocs(all, o.sort)
	page := window(all, o.limit, o.skip)
	out := make([]*object, len(page))
	for i, d := range page {
		out[i] = project(d, o.fields)
	}
	return out, len(all)
}

// singletonItem is Content::item for a singleton (S2): the stored item, or
// the model's defaults if it was never saved, with _model set; the filter
// is ignored.
func (s *Server) singletonItem(md *Model, fields *object) *object {
	var d *object
	if stored := s.items[md.Name]; len(stored) > 0 {
		d = project(stored[0], fields)
	} else {
		d = defaultItem(md)
	}
	d = d.clone()
	d.set("_model", md.Name)
	return d
}

// list is GET /content/items/{model} (R3, R6, Q8, S1).
func (s *Server) list(w http.ResponseWriter, model string, p *object, c caller) {
	md := s.modelFor(w, model, "read", c)
	if md == nil {
		return
	}
	var o findOptions
	var filter, sortSpec any
	for _, name := range []string{"filter", "fields", "sort"} {
		v, present, ok := jsonParam(w, p, name, false)
		if !ok {
			return
		}
		if present {
			switch name {
			case "filter":
				filter = v
			case "fields":
				o.fields, _ = v.(*object)
			case "sort":
				sortSpec = v
			}
		}
	}
	o.filter = publishedFilter(filter)
	o.sort = sortFields(sortSpec)
	limit, hasLimit := p.get("limit")
	skip, hasSkip := p.get("skip")
	o.limit, o.skip = phpInt(limit), phpInt(skip)
	envelope := hasLimit && limit != nil && hasSkip && skip != nil
	var page []*object
	total := 1 // Content::count is 1 for a singleton
	if !md.Singleton {
		page, total = s.query(model, o)
	}
	list := make([]any, len(page))
	for i, d := range page {
		list[i] = d
	}
	if envelope {
		writePHPJSON(w, http.StatusOK, pairs("data", list, "meta", pairs("total", float64(total))))
		return
	}
	writePHPJSON(w, http.StatusOK, list)
}

// multi serves GET /content/items?models={alias:{model,filter,...}} (R8):
// models the caller may not read are silently left out.
func (s *Server) multi(w http.ResponseWriter, p *object, c caller) {
	raw, _ := p.get("models")
	if !phpTruthy(raw) {
		apiError(w, http.StatusPreconditionFailed, "<models> parameter is missing")
		return
	}
	spec := raw // already decoded when it came in a JSON body
	if str, isStr := raw.(string); isStr {
		var err error
		if spec, err = decodeJSON(str, true); err != nil {
			apiError(w, http.StatusPreconditionFailed, "<models> is not valid json")
			return
		}
	}
	out := newObject()
	models, _ := spec.(*object)
	if models == nil {
		writePHPJSON(w, http.StatusOK, out)
		return
	}
	for _, alias := range models.keys {
		opts, _ := models.vals[alias].(*object)
		if opts == nil {
			opts = newObject()
		}
		name := alias
		if m, ok := opts.get("model"); ok && m != nil {
			name = phpString(m)
		}
		md := s.model(name)
		if md == nil || !s.allowed(c, "content/"+name+"/read") {
			continue
		}
		var o findOptions
		f, _ := opts.get("filter")
		o.filter = publishedFilter(f)
		srt, _ := opts.get("sort")
		o.sort = sortFields(srt)
		fl, _ := opts.get("fields")
		o.fields, _ = fl.(*object)
		limit, _ := opts.get("limit")
		skip, _ := opts.get("skip")
		o.limit, o.skip = phpInt(limit), phpInt(skip)
		if md.Singleton {
			out.set(alias, s.singletonItem(md, o.fields))
			continue
		}
		page, total := s.query(name, o)
		list := make([]any, len(page))
		for i, d := range page {
			list[i] = d
		}
		if limit != nil && skip != nil {
			out.set(alias, pairs("data", list, "meta", pairs("total", float64(total))))
		} else {
			out.set(alias, list)
		}
	}
	writePHPJSON(w, http.StatusOK, out)
}

// first is GET /content/item/{model}: the first published match of the
// filter, or the singleton (R5, S2).
func (s *Server) first(w http.ResponseWriter, model string, p *object, c caller) {
	md := s.modelFor(w, model, "read", c)
	if md == nil {
		return
	}
	filter, _, ok := jsonParam(w, p, "filter", true)
	if !ok {
		return
	}
	fields, _, ok := jsonParam(w, p, "fields", true)
	if !ok {
		return
	}
	fo, _ := fields.(*object)
	if md.Singleton {
		writePHPJSON(w, http.StatusOK, s.singletonItem(md, fo))
		return
	}
	page, _ := s.query(model, findOptions{filter: publishedFilter(filter), fields: fo, limit: 1})
	if len(page) == 0 {
		empty404(w)
		return
	}
	writePHPJSON(w, http.StatusOK, page[0])
}

// getByID is GET /content/item/{model}/{id} (R4, S2).
func (s *Server) getByID(w http.ResponseWriter, model, id string, p *object, c caller) {
	md := s.modelFor(w, model, "read", c)
	if md == nil {
		return
	}
	fields, _, ok := jsonParam(w, p, "fields", true)
	if !ok {
		return
	}
	fo, _ := fields.(*object)
	if md.Singleton {
		writePHPJSON(w, http.StatusOK, s.singletonItem(md, fo))
		return
	}
	page, _ := s.query(model, findOptions{filter: pairs("_id", id, "_state", 1.0), fields: fo, limit: 1})
	if len(page) == 0 {
		empty404(w) // missing, deleted or unpublished
		return
	}
	writePHPJSON(w, http.StatusOK, page[0])
}

// save is POST /content/item/{model}: create, or update with data._id
// (W1-W7).
func (s *Server) save(w http.ResponseWriter, model string, p *object, c caller) {
	md := s.model(model)
	if md == nil {
		apiError(w, http.StatusNotFound, fmt.Sprintf("Model <%s> not found", model))
		return
	}
	var data *object
	switch d := p.vals["data"].(type) {
	case *object:
		data = d.clone()
	case []any: // a list is a PHP array too; its keys 0..n-1 are dropped below
		data = newObject()
		for i, e := range d {
			data.set(strconv.Itoa(i), e)
		}
	}
	if data == nil || len(data.keys) == 0 {
		apiError(w, http.StatusPreconditionFailed, "Item data is missing")
		return
	}
	def := defaultItem(md)
	def.set("_state", 1.0)
	id, _ := data.get("_id")
	isUpdate := id != nil
	if !isUpdate {
		if !s.allowed(c, fmt.Sprintf("content/%s/create", model)) {
			apiError(w, http.StatusForbidden, "Permission denied")
			return
		}
		data = merge(def, data)
	} else {
		if !s.allowed(c, fmt.Sprintf("content/%s/update", model)) {
			apiError(w, http.StatusForbidden, "Permission denied")
			return
		}
		if st, has := data.get("_state"); has && st != nil && !s.allowed(c, fmt.Sprintf("content/%s/publish", model)) {
			data.del("_state")
		}
	}
	// Keys the model does not have are dropped (W3).
	for _, k := range append([]string(nil), data.keys...) {
		if _, ok := def.get(k); !ok && k != "_id" {
			data.del(k)
		}
	}
	writePHPJSON(w, http.StatusOK, s.saveItem(md, data, c.userID))
}

// saveItem is Content::saveItem (W4-W7, S3): it stamps the item and
// stores it, and returns what Cockpit answers.
func (s *Server) saveItem(md *Model, it *object, userID any) *object {
	if st, ok := it.get("_state"); ok && st != nil {
		if _, numeric := phpNumeric(st); !numeric {
			it.del("_state")
		}
	}
	isUpdate := false
	if md.Singleton {
		var current *object
		if stored := s.items[md.Name]; len(stored) > 0 {
			current, isUpdate = stored[0], true
		} else {
			current = defaultItem(md)
			current.set("_model", md.Name)
		}
		it = merge(current, it)
	} else if id, _ := it.get("_id"); id != nil {
		isUpdate = true
	} else {
		it = merge(defaultItem(md), it)
	}
	now := s.unix()
	it.set("_modified", now)
	it.set("_mby", userID)
	if !isUpdate {
		it.set("_created", now)
		if st, _ := it.get("_state"); st == nil {
			it.set("_state", 0.0)
		}
		it.set("_cby", userID)
	}
	// MongoLite's save: with an _id, a $set of every key on the document
	// with that id (nothing if there is none); without, an insert.
	if id, _ := it.get("_id"); id != nil {
		for _, d := range s.items[md.Name] {
			if v, _ := d.get("_id"); sqlEq(sqlValue(v, true), quoteSQL(id)) {
				for _, k := range it.keys {
					if k != "_id" {
						d.set(k, cloneValue(it.vals[k]))
					}
				}
			}
		}
		return it
	}
	it.set("_id", newID())
	s.items[md.Name] = append(s.items[md.Name], it.clone())
	return it
}

// defaultItem is Content::getDefaultModelItem: each field's opts.default,
// else [] for a multiple field and null for the others (W4).
func defaultItem(md *Model) *object {
	d := newObject()
	for _, f := range md.Fields {
		switch {
		case f.Default != nil:
			d.set(f.Name, fromGo(f.Default))
		case f.Multiple:
			d.set(f.Name, []any{})
		default:
			d.set(f.Name, nil)
		}
	}
	return d
}

// remove is DELETE /content/item/{model}/{id} (W9, S4).
func (s *Server) remove(w http.ResponseWriter, model, id string, c caller) {
	md := s.model(model)
	if md == nil {
		apiError(w, http.StatusNotFound, fmt.Sprintf("Model <%s> not found", model))
		return
	}
	if md.Singleton {
		apiError(w, http.StatusPreconditionFailed, fmt.Sprintf("DELETE method not allowed for <%s>", model))
		return
	}
	if !s.allowed(c, fmt.Sprintf("content/%s/delete", model)) {
		apiError(w, http.StatusForbidden, "Permission denied")
		return
	}
	kept := s.items[model][:0]
	for _, d := range s.items[model] {
		if v, _ := d.get("_id"); v != id {
			kept = append(kept, d)
		}
	}
	s.items[model] = kept
	// Success also for ids that do not exist or are malformed.
	writePHPJSON(w, http.StatusOK, pairs("success", true))
}
