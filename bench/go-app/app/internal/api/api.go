// Package api is the service's HTTP interface.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"example.com/svc/internal/auth"
	"example.com/svc/internal/export"
	"example.com/svc/internal/metrics"
	"example.com/svc/internal/model"
	"example.com/svc/internal/render"
	"example.com/svc/internal/search"
	"example.com/svc/internal/store"
)

// Version is the API's version, in every response.
const Version = "2026-12-06"

// API serves the store.
type API struct {
	Store    *store.Store
	Index    *search.Index
	Auth     auth.Signer
	Metrics  *metrics.Metrics
	PageSize int
	Started  time.Time
	counts   map[string]int64
}

// Handler routes every endpoint.
func (a *API) Handler() http.Handler {
	a.counts = map[string]int64{}
	mux := http.NewServeMux()
	route := func(name string, h http.HandlerFunc) {
		mux.Handle(name, a.Metrics.Wrap(name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.counts[name]++
			w.Header().Set("API-Version", Version)
			h(w, r)
		})))
	}
	route("/users", a.users)
	route("/items", a.items)
	route("/orders", a.orders)
	route("/orders/", a.order)
	route("/search", a.search)
	route("/export.csv.gz", a.export)
	route("/status", a.status)
	return mux
}

type apiError struct {
	Error string `json:"error"`
}

func reply(w http.ResponseWriter, code int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, model.ErrInvalid):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, store.ErrNotFound):
		code = http.StatusNotFound
	}
	reply(w, code, apiError{Error: err.Error()})
}

func decode(r *http.Request, v interface{}) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", model.ErrInvalid, err)
	}
	return nil
}

func (a *API) users(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, apiError{Error: "POST only"})
		return
	}
	var u model.User
	if err := decode(r, &u); err != nil {
		fail(w, err)
		return
	}
	u, err := a.Store.AddUser(u)
	if err != nil {
		fail(w, err)
		return
	}
	tok, err := a.Auth.Issue(u.ID, u.Admin, 24*time.Hour)
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, http.StatusCreated, map[string]interface{}{"user": u, "token": tok})
}

func (a *API) items(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		limit := a.PageSize
		if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n < limit {
			limit = n
		}
		reply(w, http.StatusOK, a.Store.Items(r.URL.Query().Get("after"), limit))
	case http.MethodPut:
		c, err := a.Auth.FromRequest(r)
		if err != nil || !c.Admin {
			reply(w, http.StatusForbidden, apiError{Error: "admins only"})
			return
		}
		var it model.Item
		if err := decode(r, &it); err != nil {
			fail(w, err)
			return
		}
		if err := a.Store.PutItem(it); err != nil {
			fail(w, err)
			return
		}
		a.Index.Add(it.SKU, append([]string{it.Title}, it.Tags...)...)
		reply(w, http.StatusOK, it)
	default:
		reply(w, http.StatusMethodNotAllowed, apiError{Error: "GET or PUT"})
	}
}

func (a *API) orders(w http.ResponseWriter, r *http.Request) {
	c, err := a.Auth.FromRequest(r)
	if err != nil {
		reply(w, http.StatusUnauthorized, apiError{Error: err.Error()})
		return
	}
	if r.Method == http.MethodGet {
		reply(w, http.StatusOK, a.Store.Orders(c.Subject))
		return
	}
	var lines []model.Line
	if err := decode(r, &lines); err != nil {
		fail(w, err)
		return
	}
	o, err := a.Store.PlaceOrder(c.Subject, lines)
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, http.StatusCreated, o)
}

func (a *API) order(w http.ResponseWriter, r *http.Request) {
	c, err := a.Auth.FromRequest(r)
	if err != nil || !c.Admin {
		reply(w, http.StatusForbidden, apiError{Error: "admins only"})
		return
	}
	id := strings.TrimPrefix(r.URL.Path, "/orders/")
	o, err := a.Store.Move(id, model.Status(r.URL.Query().Get("status")))
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, http.StatusOK, o)
}

func (a *API) search(w http.ResponseWriter, r *http.Request) {
	reply(w, http.StatusOK, a.Index.Query(r.URL.Query().Get("q"), a.PageSize))
}

func (a *API) export(w http.ResponseWriter, r *http.Request) {
	c, err := a.Auth.FromRequest(r)
	if err != nil {
		reply(w, http.StatusUnauthorized, apiError{Error: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	if err := export.Orders(w, a.Store.Orders(c.Subject)); err != nil {
		fail(w, err)
	}
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	var routes []render.Route
	for name, n := range a.counts {
		routes = append(routes, render.Route{Name: name, Count: n})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = render.Page(w, "svc", a.Started, routes)
}
