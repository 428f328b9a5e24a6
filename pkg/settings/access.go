package settings

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
)

// Environment variables of API access control (docs/security.md).
const (
	EnvAPIToken     = "ROSETTA_API_TOKEN"
	EnvAPITokenFile = "ROSETTA_API_TOKEN_FILE"
)

// Access configures who may use the API. It is loaded apart from Settings
// (LoadAccess) because only the API uses it.
type Access struct {
	// APIToken is the bootstrap admin token (ROSETTA_API_TOKEN, or the
	// content of ROSETTA_API_TOKEN_FILE). The API stores its hash under the
	// name "bootstrap" when it starts; empty stores none (tokens made with
	// `rosetta token create` still work). `rosetta dev` generates one when
	// it is empty.
	APIToken string
}

// LoadAccess reads the environment and validates it.
func LoadAccess() (Access, error) {
	var a Access
	tok, tokSet := os.LookupEnv(EnvAPIToken)
	file := os.Getenv(EnvAPITokenFile)
	switch {
	case tokSet && tok != "" && file != "":
		return a, fmt.Errorf("both %s and %s are set: set one", EnvAPIToken, EnvAPITokenFile)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return a, fmt.Errorf("%s: %w", EnvAPITokenFile, err)
		}
		a.APIToken = strings.TrimSpace(string(b))
		if a.APIToken == "" {
			return a, fmt.Errorf("%s=%s: the file is empty", EnvAPITokenFile, file)
		}
	default:
		a.APIToken = tok
	}
	var errs []error
	if a.APIToken != "" {
		if err := apitoken.CheckBootstrap(a.APIToken); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvAPIToken, err))
		}
	}
	return a, errors.Join(errs...)
}
