package contracts

import "testing"

func TestParseTable(t *testing.T) {
	tests := []struct {
		in      string
		want    Table
		wantErr bool
	}{
		{in: "public.orders", want: Table{"public", "orders"}},
		{in: "App.Orders", want: Table{"App", "Orders"}},
		{in: "s.table with space", want: Table{"s", "table with space"}},
		{in: "orders", wantErr: true},
		{in: ".orders", wantErr: true},
		{in: "public.", wantErr: true},
		{in: "a.b.c", wantErr: true},
		{in: " public.orders", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTable(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseTable(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("ParseTable(%q).String() = %q", tt.in, got.String())
		}
	}
}
