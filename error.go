// Package bookstore holds the domain types of the online bookstore (books, authors, categories,
// inventory, reviews), its error codes and the interfaces its services share. It imports no
// transport or storage package: store/, search/, resolvers/ and cmd/ depend on it, never the
// other way round.
package bookstore

import (
	"errors"
	"fmt"
)

// Error codes. They are part of the API contract: GraphQL errors carry them in
// extensions.code and mutation payloads in userErrors.code, so never rename one.
const (
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeNotFound        = "NOT_FOUND"
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeConflict        = "CONFLICT"
	CodeOutOfStock      = "OUT_OF_STOCK"
	CodeInternal        = "INTERNAL"
	CodeUnavailable     = "UNAVAILABLE"

	// CodeInsufficientStock: fewer units on hand than asked for (some, unlike OUT_OF_STOCK).
	CodeInsufficientStock = "INSUFFICIENT_STOCK"

	// Payment outcomes (checkout's userErrors). PAYMENT_DECLINED: the issuer or the PSP
	// refused the card; INSUFFICIENT_FUNDS: refused for want of funds; PAYMENT_ERROR: the
	// PSP failed to process the payment (or did not answer in time). None of them moved
	// money: the customer may retry, with another card or later.
	CodePaymentDeclined   = "PAYMENT_DECLINED"
	CodeInsufficientFunds = "INSUFFICIENT_FUNDS"
	CodePaymentError      = "PAYMENT_ERROR"

	// CodeCredentialFieldLimit: an operation asks for more than one password check or
	// token exchange (login, register, refreshToken, changePassword): each costs a slow
	// hash or a database transaction, so one request may not multiply them with aliases.
	CodeCredentialFieldLimit = "CREDENTIAL_FIELD_LIMIT_EXCEEDED"

	// Cart and promotion codes (userErrors of the cart mutations, warnings of a cart).
	CodeQuantityLimit         = "QUANTITY_LIMIT"
	CodeLineLimit             = "LINE_LIMIT"
	CodeUnknownBook           = "UNKNOWN_BOOK"
	CodeInvalidDiscountCode   = "INVALID_DISCOUNT_CODE"
	CodeDiscountNotApplicable = "DISCOUNT_NOT_APPLICABLE"
	CodeCartNotFound          = "CART_NOT_FOUND"

	// CodeSubscriptionLimit: a subscription over the limit of the connection or of the
	// customer (across their connections to one instance); end one first.
	CodeSubscriptionLimit = "SUBSCRIPTION_LIMIT_EXCEEDED"

	// Review codes (reviewCreate's userErrors, on field bookId). NOT_PURCHASED: the
	// customer has no delivered (or returned) order containing the book;
	// ALREADY_REVIEWED: the customer has reviewed the book before.
	CodeNotPurchased    = "NOT_PURCHASED"
	CodeAlreadyReviewed = "ALREADY_REVIEWED"
)

// Error is an error whose Code and Message may be shown to API clients. Anything that is
// not an *Error (or does not wrap one) is internal: it is logged and clients get a generic
// message with CodeInternal.
type Error struct {
	Code    string
	Message string
	// Field is the input path the error is about ("after", "filter.minRating"), if any.
	Field string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted, client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidField returns a BAD_USER_INPUT error about one input field.
func InvalidField(field, format string, args ...any) *Error {
	return &Error{Code: CodeBadUserInput, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, CodeInternal for any other
// non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of err: the *Error's message, or a generic
// text for internal errors, whose details must not leak.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
