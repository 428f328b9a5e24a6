package api

import (
	"bufio"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/changetail"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/pkg/verify"
	"github.com/rosettacdc/rosetta/services/sink/drivers/builtin"
)

// readSpec reads contracts/openapi.yaml as lines. The checks below parse
// it by indentation, which the file keeps regular (two spaces a level).
func readSpec(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../contracts/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// specOperations returns "METHOD /path" for every operation in paths.
func specOperations(lines []string) []string {
	pathRe := regexp.MustCompile(`^  (/\S*):$`)
	methodRe := regexp.MustCompile(`^    (get|post|put|delete|patch):$`)
	var out []string
	in, cur := false, ""
	for _, l := range lines {
		switch {
		case l == "paths:":
			in = true
		case in && len(l) > 0 && l[0] != ' ':
			in = false
		case in && pathRe.MatchString(l):
			cur = pathRe.FindStringSubmatch(l)[1]
		case in && methodRe.MatchString(l):
			out = append(out, strings.ToUpper(methodRe.FindStringSubmatch(l)[1])+" "+cur)
		}
	}
	sort.Strings(out)
	return out
}

// schemaBlock returns the lines of components.schemas.<name> below its
// name.
func schemaBlock(lines []string, name string) []string {
	var out []string
	in := false
	for _, l := range lines {
		indent := len(l) - len(strings.TrimLeft(l, " "))
		switch {
		case l == "    "+name+":":
			in = true
		case in && strings.TrimSpace(l) != "" && indent <= 4:
			return out
		case in:
			out = append(out, l)
		}
	}
	return out
}

// schemaProperties returns the property names of components.schemas.<name>.
func schemaProperties(t *testing.T, lines []string, name string) []string {
	t.Helper()
	var out []string
	props := false
	for _, l := range schemaBlock(lines, name) {
		indent := len(l) - len(strings.TrimLeft(l, " "))
		switch {
		case l == "      properties:":
			props = true
		case props && indent == 8 && strings.Contains(l, ":"):
			out = append(out, strings.TrimSpace(strings.SplitN(l, ":", 2)[0]))
		case props && indent <= 6:
			props = false
		}
	}
	if len(out) == 0 {
		t.Fatalf("openapi.yaml: schema %s has no properties", name)
	}
	sort.Strings(out)
	return out
}

func jsonFields(v any) []string {
	var out []string
	rt := reflect.TypeOf(v)
	for i := 0; i < rt.NumField(); i++ {
		tag := strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]
		if tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	// The routes only: the store is never called.
	_, js := testkit.StartNATS(t).Connect(t)
	srv, err := New(Config{}, &configstore.Store{}, js, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	seen := map[string]bool{}
	for _, r := range srv.App().GetRoutes(true) {
		if r.Method == "HEAD" || !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		p := regexp.MustCompile(`:(\w+)`).ReplaceAllString(strings.TrimPrefix(r.Path, "/api/v1"), "{$1}")
		op := r.Method + " " + p
		if !seen[op] {
			seen[op] = true
			routes = append(routes, op)
		}
	}
	sort.Strings(routes)
	spec := readSpec(t)
	if got := specOperations(spec); strings.Join(got, "\n") != strings.Join(routes, "\n") {
		t.Fatalf("contracts/openapi.yaml operations:\n%s\n\nserver routes:\n%s", strings.Join(got, "\n"), strings.Join(routes, "\n"))
	}

	checks := []struct {
		schema string
		want   []string
	}{
		{"SourceRequest", jsonFields(sourceRequest{})},
		{"Source", jsonFields(sourceView{})},
		{"DestinationRequest", jsonFields(destinationRequest{})},
		{"Destination", jsonFields(destinationView{})},
		{"PipelineRequest", jsonFields(pipelineRequest{})},
		{"Pipeline", jsonFields(pipelineView{})},
		{"DestinationStatus", jsonFields(destinationStateView{})},
		{"PipelineDestinationStatus", jsonFields(pipelineDestinationStatus{})},
		{"Error", jsonFields(errorBody{})},
		{"Health", jsonFields(healthBody{})},
		{"Liveness", jsonFields(livenessBody{})},
		{"WhoAmI", jsonFields(whoamiView{})},
		{"TokenRequest", jsonFields(tokenRequest{})},
		{"Token", jsonFields(tokenView{})},
		{"AuditEntry", jsonFields(auditView{})},
		{"DLQTable", jsonFields(dlqTableView{})},
		{"DLQSummary", jsonFields(dlqSummaryView{})},
		{"PipelineDLQ", jsonFields(pipelineDLQView{})},
		{"DLQPosition", jsonFields(dlqPositionView{})},
		{"DLQEntry", jsonFields(dlqEntryView{})},
		{"DLQEntryPage", jsonFields(dlqPageView{})},
		{"RecoverRequest", jsonFields(recoverRequest{})},
		{"Recovery", jsonFields(recoveryView{})},
		{"DiscardRequest", jsonFields(discardRequest{})},
		{"DiscardResult", jsonFields(discardView{})},
		{"SourceTable", jsonFields(sourceTableView{})},
		{"DestinationType", jsonFields(destinationTypeView{})},
		{"DestinationField", jsonFields(fieldView{})},
		{"DestinationCheck", jsonFields(configCheckResult{})},
		{"QueryRequest", jsonFields(queryRequest{})},
		{"QueryResult", jsonFields(queryView{})},
		{"VerifyRequest", jsonFields(VerifyRequest{})},
		{"Verification", jsonFields(VerifyView{})},
		{"VerifyResult", jsonFields(verify.TableResult{})},
		{"VerifyKey", jsonFields(verify.KeyDiff{})},
		{"TailChange", jsonFields(changetail.Event{})},
		{"TailSkipped", jsonFields(tailSkipped{})},
	}
	for typ, schema := range destinationConfigSchemas {
		var names []string
		for _, f := range builtin.Types().Fields(typ) {
			names = append(names, f.Name)
		}
		sort.Strings(names)
		checks = append(checks, struct {
			schema string
			want   []string
		}{schema, names})
	}
	for _, c := range checks {
		if got := schemaProperties(t, spec, c.schema); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("openapi.yaml %s properties = %v, code has %v", c.schema, got, c.want)
		}
	}
}
