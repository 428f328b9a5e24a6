// Package destcheck is the vocabulary of a live destination check
// (`rosetta check-destination`, POST /destinations/{id}/check-live): the
// steps a driver runs against the real destination with the stored
// credentials, each passed or failed with its reason. Drivers produce a
// Report; the API and the CLI only show it.
package destcheck

// Result is one step of a live check: a capability (login, warehouse,
// stage PUT) or one mapped type's round trip.
type Result struct {
	// Check names the step ("login", "stage PUT", "type numeric(12,4)").
	Check string `json:"check"`
	// OK is true when the step passed.
	OK bool `json:"ok"`
	// Detail says what was done or, on failure, why it failed and what to
	// fix; never a secret and never a staged value of a real table.
	Detail string `json:"detail"`
}

// Report is the outcome of a live check: OK only when every result is.
type Report struct {
	OK      bool     `json:"ok"`
	Results []Result `json:"results"`
}

// Add appends a result and keeps OK up to date.
func (r *Report) Add(check string, ok bool, detail string) {
	if len(r.Results) == 0 {
		r.OK = true
	}
	r.Results = append(r.Results, Result{Check: check, OK: ok, Detail: detail})
	r.OK = r.OK && ok
}

// Failed counts the failed results.
func (r *Report) Failed() int {
	n := 0
	for _, res := range r.Results {
		if !res.OK {
			n++
		}
	}
	return n
}
