package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

// errNoAPI means no Rosetta API answered, or none has the file as a
// destination: duckquery then goes on without the API.
var errNoAPI = errors.New("not through the API")

// apiClient calls a running Rosetta's API with a token.
type apiClient struct {
	base  string // http://host:port/api/v1
	token string
	http  *http.Client
}

// defaultAPI is the API of the Rosetta on this machine: ROSETTA_HTTP_ADDR,
// else rosetta dev's default address.
func defaultAPI() string {
	addr := os.Getenv(settings.EnvHTTPAddr)
	if addr == "" {
		addr = settings.Default().HTTPAddr
	}
	return "http://" + addr
}

// apiToken is ROSETTA_API_TOKEN, else the token `rosetta dev` keeps in its
// data directory (ROSETTA_DATA_DIR); "" when there is neither.
func apiToken() (string, error) {
	if t := os.Getenv(settings.EnvAPIToken); t != "" {
		return t, nil
	}
	dir := os.Getenv(settings.EnvDataDir)
	if dir == "" {
		dir = settings.Default().DataDir
	}
	b, err := os.ReadFile(filepath.Join(dir, settings.DevTokenFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the API token of rosetta dev: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// do sends one JSON request and decodes a 2xx answer into out; another
// status is an error carrying the API's message.
func (a *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("%s %s: %d", method, path, resp.StatusCode)
	}
	return json.Unmarshal(b, out)
}

// canonical is path made absolute with its links resolved, as the API
// stores DuckDB paths; a path that does not resolve stays absolute.
func canonical(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	return abs, nil
}

// destinationFor finds the DuckDB destination whose path is file (both
// made canonical), paging through GET /destinations.
func (a *apiClient) destinationFor(ctx context.Context, file string) (id int64, name string, err error) {
	want, err := canonical(file)
	if err != nil {
		return 0, "", err
	}
	for offset := 0; ; offset += 500 {
		var page struct {
			Items []struct {
				ID     int64          `json:"id"`
				Name   string         `json:"name"`
				Type   string         `json:"type"`
				Config map[string]any `json:"config"`
			} `json:"items"`
			Total int `json:"total"`
		}
		if err := a.do(ctx, "GET", fmt.Sprintf("/destinations?limit=500&offset=%d", offset), nil, &page); err != nil {
			return 0, "", err
		}
		for _, d := range page.Items {
			p, _ := d.Config["path"].(string)
			if d.Type != "duckdb" || p == "" {
				continue
			}
			if got, err := canonical(p); err == nil && got == want {
				return d.ID, d.Name, nil
			}
		}
		if offset+500 >= page.Total {
			return 0, "", nil
		}
	}
}

// queryThroughAPI runs the query with POST /destinations/{id}/query when a
// Rosetta API answers at base and has file as a DuckDB destination; it
// says on stderr which way the query goes. errNoAPI means go on without
// the API; any other error is the query's own.
func queryThroughAPI(ctx context.Context, base, file, query string, limit int, stderr io.Writer) (*destquery.Result, error) {
	if base == "" {
		return nil, errNoAPI
	}
	token, err := apiToken()
	if err != nil {
		return nil, err
	}
	a := &apiClient{base: strings.TrimSuffix(base, "/") + "/api/v1", token: token, http: &http.Client{Timeout: destquery.MaxTimeout + 5*time.Second}}
	// A Rosetta that is not running is the normal case for a file at
	// rest: a short probe, then the other ways.
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	var health struct{}
	err = a.do(pctx, "GET", "/health", nil, &health)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "duckquery: no Rosetta API at %s; querying %s without it\n", base, file)
		return nil, errNoAPI
	}
	if token == "" {
		fmt.Fprintf(stderr, "duckquery: a Rosetta API answers at %s, but there is no token (set %s, or %s to the data dir of rosetta dev); querying %s without it\n",
			base, settings.EnvAPIToken, settings.EnvDataDir, file)
		return nil, errNoAPI
	}
	id, name, err := a.destinationFor(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("the Rosetta API at %s: %w", base, err)
	}
	if id == 0 {
		fmt.Fprintf(stderr, "duckquery: no DuckDB destination of the Rosetta at %s uses %s; querying it without the API\n", base, file)
		return nil, errNoAPI
	}
	// The API's answer has Result's fields (and elapsed_ms).
	var res destquery.Result
	body := map[string]any{"sql": query, "limit": limit, "timeout_ms": destquery.MaxTimeout.Milliseconds()}
	if err := a.do(ctx, "POST", fmt.Sprintf("/destinations/%d/query", id), body, &res); err != nil {
		return nil, fmt.Errorf("query destination %d (%s) through the Rosetta API at %s: %w", id, name, base, err)
	}
	fmt.Fprintf(stderr, "duckquery: queried destination %d (%s) through the Rosetta API at %s\n", id, name, base)
	return &res, nil
}
