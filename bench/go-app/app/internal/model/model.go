// Package model is the service's data.
package model

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// User is an account.
type User struct {
	ID      string    `json:"id"`
	Email   string    `json:"email"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Admin   bool      `json:"admin,omitempty"`
}

// Item is something sold.
type Item struct {
	SKU   string   `json:"sku"`
	Title string   `json:"title"`
	Cents int64    `json:"cents"`
	Tags  []string `json:"tags,omitempty"`
}

// Line is an item in an order.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
	Cents    int64  `json:"cents"`
}

// Order is a user's purchase.
type Order struct {
	ID      string    `json:"id"`
	UserID  string    `json:"user_id"`
	Lines   []Line    `json:"lines"`
	Created time.Time `json:"created"`
	Status  Status    `json:"status"`
}

// Status is where an order is.
type Status string

const (
	StatusOpen     Status = "open"
	StatusPaid     Status = "paid"
	StatusShipped  Status = "shipped"
	StatusCanceled Status = "canceled"
)

// ErrInvalid wraps every validation error.
var ErrInvalid = errors.New("invalid")

// Validate checks a user.
func (u User) Validate() error {
	if _, err := mail.ParseAddress(u.Email); err != nil {
		return fmt.Errorf("%w: email %q: %v", ErrInvalid, u.Email, err)
	}
	if strings.TrimSpace(u.Name) == "" || len(u.Name) > 200 {
		return fmt.Errorf("%w: name must be 1–200 characters", ErrInvalid)
	}
	return nil
}

// Validate checks an item.
func (i Item) Validate() error {
	switch {
	case i.SKU == "" || len(i.SKU) > 32:
		return fmt.Errorf("%w: sku must be 1–32 characters", ErrInvalid)
	case i.Cents < 0:
		return fmt.Errorf("%w: price below zero", ErrInvalid)
	}
	return nil
}

// Total is the order's sum.
func (o Order) Total() int64 {
	var t int64
	for _, l := range o.Lines {
		t += l.Cents * int64(l.Quantity)
	}
	return t
}

// Next says whether an order may move from s to to.
func (s Status) Next(to Status) bool {
	switch s {
	case StatusOpen:
		return to == StatusPaid || to == StatusCanceled
	case StatusPaid:
		return to == StatusShipped || to == StatusCanceled
	}
	return false
}
