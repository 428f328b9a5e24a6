package snowflake

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	kgzip "github.com/klauspost/compress/gzip"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// benchBatch is a 1000-row batch (the sink's default batch size) of an
// orders-like table: keys, short text, a decimal, a timestamp, a boolean, a
// ~250-byte JSON document; every tenth row an update with a TOASTed column
// unchanged and every twentieth a delete.
func benchBatch() (shape, []cdc.RowChange) {
	s := shape{cols: []stageColumn{
		{source: "id", name: "ID", base: "bigint", typ: mapType("bigint"), key: true},
		{source: "customer", name: "CUSTOMER", base: "text", typ: mapType("text")},
		{source: "status", name: "STATUS", base: "text", typ: mapType("text")},
		{source: "amount", name: "AMOUNT", base: "numeric(12,2)", typ: mapType("numeric(12,2)")},
		{source: "paid", name: "PAID", base: "boolean", typ: mapType("boolean")},
		{source: "created", name: "CREATED", base: "timestamp with time zone", typ: mapType("timestamp with time zone")},
		{source: "doc", name: "DOC", base: "jsonb", typ: mapType("jsonb")},
	}, keys: []int{0}}
	v := func(x string) cdc.Value { return cdc.Value{Text: x} }
	rows := make([]cdc.RowChange, 1000)
	for i := range rows {
		id := strconv.Itoa(1_000_000 + i*7)
		r := cdc.RowChange{Key: []cdc.Value{v(id)}, Version: contracts.Version{LSN: uint64(0x16B374D848 + i*64), Seq: int64(i%5 + 1)}}
		switch {
		case i%20 == 19:
			r.Delete = true
		default:
			r.Values = map[string]cdc.Value{
				"id": v(id), "customer": v(fmt.Sprintf("customer-%05d@example.com", i*37%10007)),
				"status": v([]string{"new", "paid", "shipped", "cancelled"}[i%4]), "amount": v(fmt.Sprintf("%d.%02d", i*13%100000, i%100)),
				"paid": v(strconv.FormatBool(i%3 == 0)), "created": v(fmt.Sprintf("2024-03-%02d %02d:%02d:%02d.%06d+00", i%28+1, i%24, i%60, (i*7)%60, i*997%1000000)),
				"doc": v(fmt.Sprintf(`{"lines": [{"sku": "SKU-%06d", "qty": %d, "price": "%d.99"}, {"sku": "SKU-%06d", "qty": 1, "price": "4.50"}], `+
					`"shipping": {"city": "Lyon", "zip": "690%02d", "express": %t}, "note": "leave at the door, ring twice"}`, i*31%999999, i%7+1, i%300, i*17%999999, i%100, i%2 == 0)),
			}
			if i%10 == 9 {
				delete(r.Values, "doc")
				r.Unchanged = []string{"doc"}
			}
		}
		rows[i] = r
	}
	return s, rows
}

// BenchmarkStageFile compares the staging file formats for one batch:
// encode time and allocations per batch, and the compressed size (what PUT
// uploads). See docs/snowflake.md for the results and the decision.
func BenchmarkStageFile(b *testing.B) {
	s, rows := benchBatch()
	table := contracts.Table{Schema: "app", Name: "orders"}
	formats := []struct {
		name  string
		write func(w io.Writer) error
	}{
		{"csv-gzip-stdlib-bestspeed", func(w io.Writer) error {
			zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			return finish(writeCSV(zw, table, s, rows), zw)
		}},
		{"csv-gzip-stdlib-default", func(w io.Writer) error {
			zw := gzip.NewWriter(w)
			return finish(writeCSV(zw, table, s, rows), zw)
		}},
		{"csv-gzip-klauspost-bestspeed", func(w io.Writer) error {
			zw, _ := kgzip.NewWriterLevel(w, kgzip.BestSpeed)
			return finish(writeCSV(zw, table, s, rows), zw)
		}},
		{"csv-uncompressed", func(w io.Writer) error { return writeCSV(w, table, s, rows) }},
		{"parquet-snappy", func(w io.Writer) error { return writeStageParquet(w, s, rows, compress.Codecs.Snappy) }},
		{"parquet-zstd", func(w io.Writer) error { return writeStageParquet(w, s, rows, compress.Codecs.Zstd) }},
		{"parquet-gzip", func(w io.Writer) error { return writeStageParquet(w, s, rows, compress.Codecs.Gzip) }},
	}
	for _, f := range formats {
		b.Run(f.name, func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := f.write(&buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "file-bytes")
			b.ReportMetric(float64(buf.Len())/float64(len(rows)), "bytes/row")
		})
	}
}

// writeCSV is writeStageCSV for a batch without moved rows.
func writeCSV(w io.Writer, table contracts.Table, s shape, rows []cdc.RowChange) error {
	_, err := writeStageCSV(w, table, s, rows, nil)
	return err
}

func finish(err error, c io.Closer) error {
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeStageParquet is the Parquet alternative to writeStageCSV, kept only
// for the benchmark: the same columns, every data column as a UTF-8 string
// (the values are PostgreSQL text converted by encode; typed Parquet would
// need a parse per value and type on top), meta columns typed.
func writeStageParquet(w io.Writer, s shape, rows []cdc.RowChange, codec compress.Compression) error {
	var fields []arrow.Field
	for _, c := range s.cols {
		fields = append(fields, arrow.Field{Name: c.name, Type: arrow.BinaryTypes.String, Nullable: true})
	}
	fields = append(fields,
		arrow.Field{Name: delCol, Type: arrow.FixedWidthTypes.Boolean},
		arrow.Field{Name: lsnCol, Type: arrow.PrimitiveTypes.Uint64},
		arrow.Field{Name: seqCol, Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: keepCol, Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: fbCol, Type: arrow.FixedWidthTypes.Boolean})
	for i := range s.keys {
		fields = append(fields, arrow.Field{Name: fbKeyPrefix + strconv.Itoa(i+1), Type: arrow.BinaryTypes.String, Nullable: true})
	}
	schema := arrow.NewSchema(fields, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	n := len(s.cols)
	for _, r := range rows {
		for i, c := range s.cols {
			sb := rb.Field(i).(*array.StringBuilder)
			var v cdc.Value
			switch {
			case c.key:
				v = r.Key[keyIndex(s, i)]
			case r.Delete:
				v = cdc.Value{Null: true}
			default:
				var ok bool
				if v, ok = r.Values[c.source]; !ok {
					v = cdc.Value{Null: true}
				}
			}
			if v.Null {
				sb.AppendNull()
				continue
			}
			text, err := encode(c.typ, c.base, v.Text)
			if err != nil {
				return err
			}
			sb.Append(text)
		}
		rb.Field(n).(*array.BooleanBuilder).Append(r.Delete)
		rb.Field(n + 1).(*array.Uint64Builder).Append(r.Version.LSN)
		rb.Field(n + 2).(*array.Int64Builder).Append(r.Version.Seq)
		if len(r.Unchanged) > 0 {
			flags := []byte(strings.Repeat("0", n))
			for _, u := range r.Unchanged {
				for i, c := range s.cols {
					if c.source == u {
						flags[i] = '1'
					}
				}
			}
			rb.Field(n + 3).(*array.StringBuilder).Append(string(flags))
		} else {
			rb.Field(n + 3).(*array.StringBuilder).AppendNull()
		}
		rb.Field(n + 4).(*array.BooleanBuilder).Append(false)
		for i := range s.keys {
			rb.Field(n + 5 + i).(*array.StringBuilder).AppendNull()
		}
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	props := parquet.NewWriterProperties(parquet.WithCompression(codec), parquet.WithDictionaryDefault(true))
	fw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return err
	}
	if err := fw.Write(rec); err != nil {
		return err
	}
	return fw.Close()
}

// BenchmarkApply applies 1000-row batches (inserts of new keys, then
// updates of the same keys) to the fake Snowflake: the driver's own cost
// plus DuckDB's, not Snowflake's (whose statements each take tens to
// hundreds of milliseconds regardless of batch size).
func BenchmarkApply(b *testing.B) {
	srv := startFake(b)
	d := New(parseTestConfig(b, fakeConfig(b, srv, nil)), quietLog())
	defer d.Close()
	it := ev{Table: "items", Columns: itemCols}
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		changes := make([]contracts.Change, 0, 1000)
		for i := 0; i < 1000; i++ {
			id := ((n-1)/2)*1000 + i
			if n%2 == 1 {
				changes = append(changes, it.Ins(uint64(n), id, fmt.Sprintf("row %d", id)))
			} else {
				changes = append(changes, it.Upd(uint64(n), id, fmt.Sprintf("updated %d", id)))
			}
		}
		batches, err := cdc.Collapse(changes)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Apply(ctx, batches); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "rows/s")
}
