package secrets

import "testing"

// TestJetStreamKey pins the derivation: a change would leave every
// embedded JetStream store unreadable under the key it was written with.
func TestJetStreamKey(t *testing.T) {
	t.Parallel()
	got, err := JetStreamKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	const want = "7b947065b1b0ab5af5525097e60868f2fc42018c0126e711d5e21722c9ed67ec"
	if got != want {
		t.Fatalf("JetStreamKey(testKey) = %s, want %s", got, want)
	}
	other, err := JetStreamKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if other == got {
		t.Fatal("two secret keys derive the same JetStream key")
	}
	if _, err := JetStreamKey(""); err == nil {
		t.Fatal("an empty secret key derived a JetStream key")
	}
}
