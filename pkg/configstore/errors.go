package configstore

import "errors"

// ErrNotFound is wrapped by errors about an id that does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is matched (errors.Is) by *ConflictError.
var ErrConflict = errors.New("conflict")

// ErrInvalidReference is matched (errors.Is) by *ReferenceError.
var ErrInvalidReference = errors.New("invalid reference")

// ConflictError is a change refused because of other config: a duplicate
// name, slot or publication, or a source or destination still used by a
// pipeline. Field names the input field at fault ("name", "slot"), or is
// empty when the conflict is with the entity as a whole (in use).
type ConflictError struct {
	Field string
	Msg   string
}

func (e *ConflictError) Error() string        { return e.Msg }
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ReferenceError is a change naming an id that does not exist, such as a
// pipeline's source_id. Field names the input field.
type ReferenceError struct {
	Field string
	Msg   string
}

func (e *ReferenceError) Error() string        { return e.Msg }
func (e *ReferenceError) Is(target error) bool { return target == ErrInvalidReference }
