package pgrepl

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// wireScratch holds the messages DecodeRowMessage parses, reused from one
// message to the next. Their columns' Data are slices of the message's
// bytes, valid only while that message is decoded.
type wireScratch struct {
	ins    pglogrepl.InsertMessage
	upd    pglogrepl.UpdateMessage
	del    pglogrepl.DeleteMessage
	tuples [2]pglogrepl.TupleData
	cols   [2][]pglogrepl.TupleDataColumn
	ptrs   [2][]*pglogrepl.TupleDataColumn
}

var errShortMessage = errors.New("message ends early")

// tuple parses TupleData from src into scratch slot k and says how many
// bytes it took.
func (w *wireScratch) tuple(k int, src []byte) (*pglogrepl.TupleData, int, error) {
	if len(src) < 2 {
		return nil, 0, errShortMessage
	}
	n := int(binary.BigEndian.Uint16(src))
	low := 2
	cols := w.cols[k][:0]
	for i := 0; i < n; i++ {
		if low >= len(src) {
			return nil, 0, errShortMessage
		}
		c := pglogrepl.TupleDataColumn{DataType: src[low]}
		low++
		if c.DataType == pglogrepl.TupleDataTypeText || c.DataType == pglogrepl.TupleDataTypeBinary {
			if len(src)-low < 4 {
				return nil, 0, errShortMessage
			}
			c.Length = binary.BigEndian.Uint32(src[low:])
			low += 4
			if uint64(len(src)-low) < uint64(c.Length) {
				return nil, 0, errShortMessage
			}
			end := low + int(c.Length)
			c.Data = src[low:end:end]
			low = end
		}
		cols = append(cols, c)
	}
	ptrs := w.ptrs[k][:0]
	for i := range cols {
		ptrs = append(ptrs, &cols[i])
	}
	w.cols[k], w.ptrs[k] = cols, ptrs
	w.tuples[k] = pglogrepl.TupleData{ColumnNum: uint16(n), Columns: ptrs}
	return &w.tuples[k], low, nil
}

func (w *wireScratch) insert(src []byte) (*pglogrepl.InsertMessage, error) {
	if len(src) < 5 {
		return nil, fmt.Errorf("insert: %w", errShortMessage)
	}
	if src[4] != pglogrepl.UpdateMessageTupleTypeNew {
		return nil, fmt.Errorf("insert: tuple type %q, want 'N'", src[4])
	}
	t, _, err := w.tuple(0, src[5:])
	if err != nil {
		return nil, fmt.Errorf("insert: tuple: %w", err)
	}
	w.ins = pglogrepl.InsertMessage{RelationID: binary.BigEndian.Uint32(src), Tuple: t}
	return &w.ins, nil
}

func (w *wireScratch) update(src []byte) (*pglogrepl.UpdateMessage, error) {
	if len(src) < 5 {
		return nil, fmt.Errorf("update: %w", errShortMessage)
	}
	w.upd = pglogrepl.UpdateMessage{RelationID: binary.BigEndian.Uint32(src)}
	low := 4
	switch kind := src[low]; kind {
	case pglogrepl.UpdateMessageTupleTypeKey, pglogrepl.UpdateMessageTupleTypeOld:
		t, used, err := w.tuple(1, src[low+1:])
		if err != nil {
			return nil, fmt.Errorf("update: old tuple: %w", err)
		}
		w.upd.OldTupleType, w.upd.OldTuple = kind, t
		low += 1 + used
		if low >= len(src) || src[low] != pglogrepl.UpdateMessageTupleTypeNew {
			return nil, fmt.Errorf("update: no new tuple after the old one")
		}
	case pglogrepl.UpdateMessageTupleTypeNew:
	default:
		return nil, fmt.Errorf("update: tuple type %q, want 'K', 'O' or 'N'", kind)
	}
	t, _, err := w.tuple(0, src[low+1:])
	if err != nil {
		return nil, fmt.Errorf("update: new tuple: %w", err)
	}
	w.upd.NewTuple = t
	return &w.upd, nil
}

func (w *wireScratch) delete(src []byte) (*pglogrepl.DeleteMessage, error) {
	if len(src) < 5 {
		return nil, fmt.Errorf("delete: %w", errShortMessage)
	}
	kind := src[4]
	if kind != pglogrepl.DeleteMessageTupleTypeKey && kind != pglogrepl.DeleteMessageTupleTypeOld {
		return nil, fmt.Errorf("delete: tuple type %q, want 'K' or 'O'", kind)
	}
	t, _, err := w.tuple(1, src[5:])
	if err != nil {
		return nil, fmt.Errorf("delete: old tuple: %w", err)
	}
	w.del = pglogrepl.DeleteMessage{RelationID: binary.BigEndian.Uint32(src), OldTupleType: kind, OldTuple: t}
	return &w.del, nil
}
