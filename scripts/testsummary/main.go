// Command testsummary reads `go test -json` on stdin, prints each package's
// result as it finishes, the output of every failed test, and closes with
// one line "N passed, N failed, N skipped". It exits non-zero when a test or
// a package (build error, panic) failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	var passed, failed, skipped int
	pkgFailed := false
	outputs := map[string]*strings.Builder{}
	var failures []string
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Build errors arrive as plain text.
			fmt.Println(string(line))
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			if b.Len() < 1<<20 {
				b.WriteString(e.Output)
			}
		case "pass":
			if e.Test != "" {
				passed++
				delete(outputs, key)
			} else {
				fmt.Printf("ok   %s\t%.1fs\n", e.Package, e.Elapsed)
				delete(outputs, key)
			}
		case "skip":
			if e.Test != "" {
				skipped++
			} else {
				fmt.Printf("?    %s\t[no test files]\n", e.Package)
			}
			delete(outputs, key)
		case "fail":
			if e.Test != "" {
				failed++
				failures = append(failures, key)
				if b := outputs[key]; b != nil {
					fmt.Printf("--- FAIL: %s (%s)\n%s", e.Test, e.Package, b.String())
				}
			} else {
				pkgFailed = true
				fmt.Printf("FAIL %s\t%.1fs\n", e.Package, e.Elapsed)
				if b := outputs[key]; b != nil {
					fmt.Print(b.String())
				}
			}
			delete(outputs, key)
		}
	}
	sort.Strings(failures)
	if len(failures) > 0 {
		fmt.Println("\nFailed tests:")
		for _, f := range failures {
			fmt.Println("  " + f)
		}
	}
	fmt.Printf("\n%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || pkgFailed {
		os.Exit(1)
	}
}
