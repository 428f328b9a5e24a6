package contracts

import "testing"

func TestSubjectsCachesChangeSubject(t *testing.T) {
	var s Subjects
	for range 2 {
		for _, c := range []struct {
			source        int64
			schema, table string
			partition     int
		}{{1, "public", "t", 0}, {1, "public", "t", 3}, {2, "public", "t", 0}, {1, "x.y", "Odd Table", 0}} {
			if got, want := s.Change(c.source, c.schema, c.table, c.partition), ChangeSubject(c.source, c.schema, c.table, c.partition); got != want {
				t.Errorf("Subjects.Change%v = %s, want %s", c, got, want)
			}
		}
	}
}
