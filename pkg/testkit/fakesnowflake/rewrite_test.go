package fakesnowflake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestRewriteColumnDefs(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`id NUMBER(38,0) NOT NULL, amount NUMBER(12, 2), n NUMBER, i INTEGER`,
			`ID DECIMAL(38,0) NOT NULL, AMOUNT DECIMAL(12,2), N DECIMAL(38,0), I DECIMAL(38,0)`},
		{`huge NUMERIC(40,2), f FLOAT, d DOUBLE PRECISION, r REAL`,
			`HUGE DECIMAL(38,2), F DOUBLE, D DOUBLE, R DOUBLE`},
		{`s STRING, v VARCHAR(255), t TEXT, c CHAR VARYING(3)`, `S VARCHAR, V VARCHAR, T VARCHAR, C VARCHAR`},
		{`ts TIMESTAMP_NTZ(9), tt TIMESTAMP, l TIMESTAMP_LTZ, z TIMESTAMP_TZ(3), dt DATETIME`,
			`TS TIMESTAMP, TT TIMESTAMP, L TIMESTAMPTZ, Z TIMESTAMPTZ, DT TIMESTAMP`},
		{`v VARIANT, o OBJECT, a ARRAY, b BINARY(16), vb VARBINARY, ok BOOLEAN, d DATE, tm TIME(9)`,
			`V JSON, O JSON, A JSON, B BLOB, VB BLOB, OK BOOLEAN, D DATE, TM TIME`},
		// Snowflake does not enforce PRIMARY KEY / UNIQUE / FOREIGN KEY: dropped.
		{`id INT PRIMARY KEY, code TEXT UNIQUE COMMENT 'c', ref INT REFERENCES other (id), PRIMARY KEY (id), CONSTRAINT u UNIQUE (code)`,
			`ID DECIMAL(38,0) NOT NULL, CODE VARCHAR, REF DECIMAL(38,0)`},
		{`"MixedCase" TEXT DEFAULT 'x', n NUMBER DEFAULT 0::NUMBER(3,0)`,
			`"M~i~x~e~dC~a~s~e" VARCHAR DEFAULT 'x', N DECIMAL(38,0) DEFAULT 0::DECIMAL(3,0)`},
	}
	for _, tc := range tests {
		toks, err := lex(tc.in)
		if err != nil {
			t.Fatalf("lex %q: %v", tc.in, err)
		}
		out, err := rewriteColumnDefs(toks)
		if err != nil {
			t.Fatalf("rewrite %q: %v", tc.in, err)
		}
		if got := render(out); got != tc.want {
			t.Errorf("rewriteColumnDefs(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`g GEOGRAPHY`, `id INT AUTOINCREMENT`, `v VECTOR(FLOAT, 3)`} {
		toks, _ := lex(bad)
		if _, err := rewriteColumnDefs(toks); err == nil {
			t.Errorf("rewriteColumnDefs(%q) accepted an unsupported construct", bad)
		}
	}
}

func TestRewriteExpressionsAndLiterals(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`select a::variant, cast(b as number(10,2)), try_cast(c AS string) from t`,
			`SELECT A::JSON, CAST(B AS DECIMAL(10,2)), TRY_CAST(C AS VARCHAR) FROM T`},
		{`select iff(x, nvl(y, 1), parse_json('{}'))`, `SELECT IF(X, COALESCE(Y, 1), JSON('{}'))`},
		{`select 'it\'s', 'a''b', 'tab\there', $$raw 'x'$$, '\\N'`, `SELECT 'it''s', 'a''b', 'tab` + "\t" + `here', 'raw ''x''', '\N'`},
		{`select "Quoted""Name", :1, :2, ? -- comment
		  /* block */ from x`, `SELECT "Q~u~o~t~e~d""N~a~m~e", $1, $2, ? FROM X`},
		{`select a as "alias" from db.sch.t where c::date = '2024-01-01'`, `SELECT A AS "~a~l~i~a~s" FROM DB.SCH.T WHERE C::DATE = '2024-01-01'`},
	}
	for _, tc := range tests {
		toks, err := lex(tc.in)
		if err != nil {
			t.Fatalf("lex %q: %v", tc.in, err)
		}
		out, err := rewriteExpressions(toks)
		if err != nil {
			t.Fatalf("rewrite %q: %v", tc.in, err)
		}
		if got := render(out); got != tc.want {
			t.Errorf("rewriteExpressions(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	if _, err := lex(`select 'unterminated`); err == nil {
		t.Error("lex accepted an unterminated string")
	}
}

func TestParseStageRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		kind  byte
		parts []string
		sub   string
		rest  string
	}{
		{`@%orders FILE_FORMAT=(TYPE=CSV)`, '%', []string{"ORDERS"}, "", " FILE_FORMAT=(TYPE=CSV)"},
		{`@rosetta.public.%"Stage T"/batch/1 PURGE=TRUE`, '%', []string{"ROSETTA", "PUBLIC", "Stage T"}, "batch/1", " PURGE=TRUE"},
		{`@~/uploads/`, '~', nil, "uploads", ""},
		{`'@my_stage/a b'`, '@', []string{"MY_STAGE"}, "a b", ""},
	}
	for _, tc := range tests {
		ref, rest, err := parseStageRef(tc.in)
		if err != nil {
			t.Fatalf("parseStageRef(%q): %v", tc.in, err)
		}
		if ref.kind != tc.kind || strings.Join(ref.parts, ".") != strings.Join(tc.parts, ".") || ref.sub != tc.sub || rest != tc.rest {
			t.Errorf("parseStageRef(%q) = %c %v %q rest %q, want %c %v %q rest %q",
				tc.in, ref.kind, ref.parts, ref.sub, rest, tc.kind, tc.parts, tc.sub, tc.rest)
		}
	}
	if _, _, err := parseStageRef(`orders`); err == nil {
		t.Error("parseStageRef accepted a name without @")
	}
}

func TestEncoders(t *testing.T) {
	t.Parallel()
	decimals := []struct {
		v     int64
		scale int
		want  string
	}{{150, 2, "1.50"}, {-5, 3, "-0.005"}, {0, 2, "0.00"}, {42, 0, "42"}}
	for _, d := range decimals {
		if got := formatDecimal(big.NewInt(d.v), d.scale); got != d.want {
			t.Errorf("formatDecimal(%d, %d) = %q, want %q", d.v, d.scale, got, d.want)
		}
	}
	stamps := []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1700000000, 123456789), "1700000000.123456789"},
		{time.Unix(-1, 500000000), "-1.500000000"}, // -0.5 s: floored seconds, positive fraction
		{time.Unix(0, 0), "0.000000000"},
	}
	for _, s := range stamps {
		if got := epochString(s.t); got != s.want {
			t.Errorf("epochString(%v) = %q, want %q", s.t, got, s.want)
		}
	}
	if got, _ := encodeVariant(`{"z":1,"a":{"y":1e40,"b":"\u00e9<"}}`); got != "{\n  \"a\": {\n    \"b\": \"é<\",\n    \"y\": 1e40\n  },\n  \"z\": 1\n}" {
		t.Errorf("encodeVariant = %q", got)
	}
}

func TestBindValue(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	tz, err := bindValue("TIMESTAMP_TZ", str("1700000000000000000 1560"))
	if err != nil {
		t.Fatal(err)
	}
	if ts := tz.(time.Time); !ts.Equal(time.Unix(1700000000, 0)) || ts.Format("-07:00") != "+02:00" {
		t.Errorf("TIMESTAMP_TZ bind = %v", ts)
	}
	tests := []struct {
		typ, in string
		want    any
	}{
		{"FIXED", "42", int64(42)},
		{"FIXED", "123456789012345678901234567890", "123456789012345678901234567890"},
		{"REAL", "2.5", 2.5},
		{"BOOLEAN", "true", true},
		{"DATE", "1709164800000", "2024-02-29"},
		{"TIME", "47655123456000", "13:14:15.123456"},
		{"TEXT", "x", "x"},
	}
	for _, tc := range tests {
		got, err := bindValue(tc.typ, str(tc.in))
		if err != nil {
			t.Fatalf("bindValue(%s, %q): %v", tc.typ, tc.in, err)
		}
		if got != tc.want {
			t.Errorf("bindValue(%s, %q) = %#v, want %#v", tc.typ, tc.in, got, tc.want)
		}
	}
	if v, err := bindValue("BINARY", str("00ab")); err != nil || string(v.([]byte)) != "\x00\xab" {
		t.Errorf("BINARY bind = %v, %v", v, err)
	}
	if _, err := bindValue("BINARY", str("[]")); err == nil {
		t.Error("BINARY bind accepted non-hex")
	}
}

// signJWT builds a key-pair login token the way gosnowflake does.
func signJWT(t *testing.T, key *rsa.PrivateKey, account, user string, iat, exp time.Time) string {
	t.Helper()
	fp, err := publicKeyFingerprint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"iss": account + "." + user + "." + fp, "sub": account + "." + user,
		"iat": iat.Unix(), "exp": exp.Unix(),
	})
	payload := base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(header + "." + payload))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return header + "." + payload + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestVerifyJWT(t *testing.T) {
	t.Parallel()
	key, other := testKeys()[0], testKeys()[1]
	now := time.Now()
	keysFor := func(u string) ([]*rsa.PublicKey, bool) {
		if u == "LOADER" {
			return []*rsa.PublicKey{&key.PublicKey}, true
		}
		return nil, false
	}
	good := signJWT(t, key, "ACME", "LOADER", now, now.Add(time.Minute))
	if user, err := verifyJWT(good, "acme.us-east-1", now, keysFor); err != nil || user != "LOADER" {
		t.Fatalf("valid token: user %q, err %v", user, err)
	}
	// A token claiming the registered key's fingerprint but signed by another key.
	forged := strings.Split(good, ".")
	otherSig := strings.Split(signJWT(t, other, "ACME", "LOADER", now, now.Add(time.Minute)), ".")[2]
	tests := []struct {
		name, token, code, msg string
	}{
		{"expired", signJWT(t, key, "ACME", "LOADER", now.Add(-2*time.Hour), now.Add(-time.Hour)), codeJWTInvalid, "expired"},
		{"other key", signJWT(t, other, "ACME", "LOADER", now, now.Add(time.Minute)), codeJWTInvalid, "fingerprint"},
		{"bad signature", forged[0] + "." + forged[1] + "." + otherSig, codeJWTInvalid, "signature"},
		{"unknown user", signJWT(t, key, "ACME", "BOB", now, now.Add(time.Minute)), codeIncorrectLogin, "BOB"},
		{"other account", signJWT(t, key, "EVIL", "LOADER", now, now.Add(time.Minute)), codeJWTInvalid, "EVIL"},
		{"garbage", "not-a-jwt", codeJWTInvalid, "compact"},
	}
	for _, tc := range tests {
		_, err := verifyJWT(tc.token, "ACME", now, keysFor)
		code, msg := asLoginError(err)
		if err == nil || code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: err %v (code %s), want code %s mentioning %q", tc.name, err, code, tc.code, tc.msg)
		}
	}
}
