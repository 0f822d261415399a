package experiment

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Table is a captioned table of formatted cells.
type Table struct {
	Caption string
	Header  []string
	Rows    [][]string
}

// Markdown renders t as a GitHub-flavoured Markdown table under its caption.
func (t Table) Markdown() string {
	var b strings.Builder
	if t.Caption != "" {
		fmt.Fprintf(&b, "%s\n\n", t.Caption)
	}
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	row := func(cells []string) {
		b.WriteString("|")
		for i := range t.Header {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteString(" " + esc(c) + " |")
		}
		b.WriteString("\n")
	}
	row(t.Header)
	b.WriteString("|")
	for range t.Header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		row(r)
	}
	return b.String()
}

// Section is a part of a report: text, tables of our numbers, plots.
type Section struct {
	Heading string
	Text    string
	Tables  []Table
	// Images are PNG files in the report's folder.
	Images []string
}

// Report is what one experiment found.
type Report struct {
	Name, Title, Ref string
	Command          string
	Quick            bool
	Took             time.Duration
	// Summary holds the headline findings, one line each, ours beside the
	// thesis's.
	Summary  []string
	Sections []Section
	// Thesis holds the thesis's own numbers for the same measurements.
	Thesis []Table
	// Notes say where this run differs from the thesis's setup.
	Notes []string
	// Files are the CSV files written, relative to the report's folder.
	Files []string
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s (%s)\n\n", r.Title, r.Ref)
	fmt.Fprintf(&b, "- Machine: %s\n", Machine())
	if r.Command != "" {
		fmt.Fprintf(&b, "- Command: `%s`\n", r.Command)
	}
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	fmt.Fprintf(&b, "- Mode: %s; took %v; written %s\n", mode, r.Took.Round(time.Second), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if len(r.Files) > 0 {
		fmt.Fprintf(&b, "- Data: %s\n", strings.Join(r.Files, ", "))
	}
	if len(r.Summary) > 0 {
		b.WriteString("\n## Summary\n\n")
		for _, s := range r.Summary {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n## %s\n\n", s.Heading)
		if s.Text != "" {
			fmt.Fprintf(&b, "%s\n\n", s.Text)
		}
		for _, t := range s.Tables {
			fmt.Fprintf(&b, "%s\n", t.Markdown())
		}
		for _, img := range s.Images {
			fmt.Fprintf(&b, "![%s](%s)\n\n", strings.TrimSuffix(img, ".png"), img)
		}
	}
	if len(r.Thesis) > 0 {
		b.WriteString("\n## The thesis's numbers\n\n")
		for _, t := range r.Thesis {
			fmt.Fprintf(&b, "%s\n", t.Markdown())
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// Write writes the report to dir/report.md.
func (r *Report) Write(dir string) error {
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644)
}

// WriteIndex writes out/README.md: each report's summary with a link to it.
func WriteIndex(out, command string, quick bool, reports []*Report) error {
	var b strings.Builder
	b.WriteString("# Spindle thesis experiments\n\n")
	fmt.Fprintf(&b, "- Machine: %s\n", Machine())
	if command != "" {
		fmt.Fprintf(&b, "- Command: `%s`\n", command)
	}
	fmt.Fprintf(&b, "- Quick: %v; written %s\n", quick, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	for _, r := range reports {
		fmt.Fprintf(&b, "\n## [%s](%s/report.md) (%s)\n\n", r.Title, r.Name, r.Ref)
		for _, s := range r.Summary {
			fmt.Fprintf(&b, "- %s\n", s)
		}
		for _, n := range r.Notes {
			if strings.HasPrefix(n, "The run failed") {
				fmt.Fprintf(&b, "- %s\n", n)
			}
		}
	}
	return os.WriteFile(filepath.Join(out, "README.md"), []byte(b.String()), 0o644)
}

// Formatting helpers for table cells.

func fmtMS(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f", ms)
	case ms >= 1:
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.3f", ms)
}

func fmtMiB(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

func fmtRatio(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0fx", x)
	case x >= 10:
		return fmt.Sprintf("%.1fx", x)
	}
	return fmt.Sprintf("%.2fx", x)
}
