package engine

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOperatorsDoc checks that OPERATORS.md lists the op set the code
// supports; SPINDLE_UPDATE_OPS=1 writes it.
func TestOperatorsDoc(t *testing.T) {
	path := filepath.Join("..", "..", "OPERATORS.md")
	want := OperatorsMarkdown()
	if os.Getenv("SPINDLE_UPDATE_OPS") == "1" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("OPERATORS.md is out of date with the engine's registry: run SPINDLE_UPDATE_OPS=1 go test ./internal/engine -run TestOperatorsDoc")
	}
}
