package fakesnowflake

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Login failure codes, as Snowflake reports them.
const (
	codeJWTInvalid        = "390144" // JWT token is invalid (signature, fingerprint, claims, expiry)
	codeIncorrectLogin    = "390100" // Incorrect username or password was specified
	codeUnsupportedAuth   = "390101" // authenticator not supported by the fake
	codeSessionExpired    = "390112" // session token expired: the client renews it
	codeSessionGone       = "390111" // session no longer exists
	codeMasterTokenGone   = "390114" // master token invalid: the client must log in again
	codeObjectMissing     = "390201" // the login's database or schema does not exist or is not authorized
	jwtClockSkewTolerance = 60 * time.Second
)

// loginError is a rejected login with the code the client sees.
type loginError struct {
	code string
	msg  string
}

func (e *loginError) Error() string { return e.code + ": " + e.msg }

// publicKeyFingerprint is Snowflake's key fingerprint: SHA256:<base64(sha256(PKIX DER))>.
func publicKeyFingerprint(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.StdEncoding.EncodeToString(sum[:]), nil
}

// jwtClaims are the claims gosnowflake puts in a key-pair login token.
type jwtClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// accountLocator is the part of an account identifier before the first dot, upper-cased,
// which is what the client puts in JWT claims.
func accountLocator(account string) string {
	a, _, _ := strings.Cut(account, ".")
	return strings.ToUpper(a)
}

// verifyJWT checks a SNOWFLAKE_JWT login token and returns the user it authenticates.
// keysFor returns the registered public keys of an upper-cased user name.
func verifyJWT(token, account string, now time.Time, keysFor func(user string) ([]*rsa.PublicKey, bool)) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", &loginError{codeJWTInvalid, "JWT token is invalid: not a compact JWS (want header.payload.signature)"}
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := decodeJWTPart(parts[0], &header); err != nil {
		return "", &loginError{codeJWTInvalid, "JWT token is invalid: header: " + err.Error()}
	}
	if header.Alg != "RS256" {
		return "", &loginError{codeJWTInvalid, fmt.Sprintf("JWT token is invalid: algorithm %q, want RS256", header.Alg)}
	}
	var claims jwtClaims
	if err := decodeJWTPart(parts[1], &claims); err != nil {
		return "", &loginError{codeJWTInvalid, "JWT token is invalid: claims: " + err.Error()}
	}
	acct := accountLocator(account)
	subAccount, user, ok := strings.Cut(claims.Sub, ".")
	if !ok || user == "" {
		return "", &loginError{codeJWTInvalid, fmt.Sprintf("JWT token is invalid: sub %q is not ACCOUNT.USER", claims.Sub)}
	}
	if subAccount != acct {
		return "", &loginError{codeJWTInvalid, fmt.Sprintf("JWT token is for account %q, this server is account %q", subAccount, acct)}
	}
	keys, known := keysFor(user)
	if !known {
		return "", &loginError{codeIncorrectLogin, fmt.Sprintf("Incorrect username or password was specified: user %q does not exist", user)}
	}
	wantIssPrefix := claims.Sub + "."
	if !strings.HasPrefix(claims.Iss, wantIssPrefix) {
		return "", &loginError{codeJWTInvalid, fmt.Sprintf("JWT token is invalid: iss %q does not start with sub %q", claims.Iss, wantIssPrefix)}
	}
	fingerprint := strings.TrimPrefix(claims.Iss, wantIssPrefix)
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", &loginError{codeJWTInvalid, "JWT token is invalid: signature is not base64url: " + err.Error()}
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	var matched *rsa.PublicKey
	for _, k := range keys {
		fp, err := publicKeyFingerprint(k)
		if err != nil {
			return "", err
		}
		if fp == fingerprint {
			matched = k
			break
		}
	}
	if matched == nil {
		return "", &loginError{codeJWTInvalid, fmt.Sprintf(
			"JWT token is invalid: public key fingerprint %s does not match any key registered for user %s (%d registered)",
			fingerprint, user, len(keys))}
	}
	if err := rsa.VerifyPKCS1v15(matched, crypto.SHA256, digest[:], sig); err != nil {
		return "", &loginError{codeJWTInvalid, "JWT token is invalid: RS256 signature does not verify with the registered key"}
	}
	if claims.Exp == 0 || now.After(time.Unix(claims.Exp, 0).Add(jwtClockSkewTolerance)) {
		return "", &loginError{codeJWTInvalid, fmt.Sprintf("JWT token is invalid: expired at %s", time.Unix(claims.Exp, 0).UTC().Format(time.RFC3339))}
	}
	if claims.Iat != 0 && time.Unix(claims.Iat, 0).After(now.Add(jwtClockSkewTolerance)) {
		return "", &loginError{codeJWTInvalid, "JWT token is invalid: issued in the future"}
	}
	return user, nil
}

func decodeJWTPart(part string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return nil
}

// asLoginError extracts the client-facing code and message of a login failure.
func asLoginError(err error) (string, string) {
	var le *loginError
	if errors.As(err, &le) {
		return le.code, le.msg
	}
	return codeJWTInvalid, err.Error()
}
