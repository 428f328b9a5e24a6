package main

import (
	"regexp"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// urlFlag is a flag.Value holding a URL or DSN that may carry a password
// or token: `-h` prints every flag's default, and shows this one redacted
// while the flag keeps the real value.
type urlFlag struct{ p *string }

func (f urlFlag) String() string {
	if f.p == nil {
		return ""
	}
	return redactSecrets(*f.p)
}

func (f urlFlag) Set(v string) error {
	*f.p = v
	return nil
}

// dsnPassword matches a password in a key=value connection string.
var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactSecrets hides the user information of a URL (a NATS token, a
// PostgreSQL or Redis password) and the password of a key=value DSN.
func redactSecrets(s string) string {
	return natsx.RedactURL(dsnPassword.ReplaceAllString(s, "${1}REDACTED"))
}
