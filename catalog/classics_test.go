package catalog

import (
	"strings"
	"testing"
)

// TestClassicsAreValidDemoBooks: every classic has a valid ISBN-13 and sits in a category
// of the generated demo tree, so loading it adds no stray genre.
func TestClassicsAreValidDemoBooks(t *testing.T) {
	paths := map[string]bool{}
	if err := Generate(1, 3000, func(r Record) error {
		for _, p := range r.Categories {
			paths[strings.Join(p, " > ")] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	isbns := map[string]bool{}
	for _, c := range Classics() {
		if n, err := NormalizeISBN(c.ISBN); err != nil || n != c.ISBN {
			t.Errorf("%s: ISBN %s: %v", c.Title, c.ISBN, err)
		}
		if isbns[c.ISBN] {
			t.Errorf("%s: duplicate ISBN %s", c.Title, c.ISBN)
		}
		isbns[c.ISBN] = true
		for _, p := range c.Categories {
			if !paths[strings.Join(p, " > ")] {
				t.Errorf("%s: category %q is not in the demo tree", c.Title, strings.Join(p, " > "))
			}
		}
		if c.Title == "" || len(c.Authors) != 1 || c.PriceCents <= 0 || c.Rating < 0 || c.Rating > 5 || c.Description == "" {
			t.Errorf("incomplete classic: %+v", c)
		}
	}
	if got := Classics()[0].ISBN; got != "9780547928227" {
		t.Errorf("The Hobbit's ISBN = %s, want the real edition's 9780547928227", got)
	}
}
