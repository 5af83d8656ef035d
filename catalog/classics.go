package catalog

import (
	"time"

	"github.com/shopfront/bookstore"
)

// Classics are a dozen well-known books that `bookstore dev` adds to the generated demo
// catalog, so that what people type first into a bookstore's search box — "tolkein",
// "harry poter", "pride and prejudice" — finds something in the demo. They sit in the
// demo genre tree's categories; their ISBNs are the real editions' (the check digit is
// computed, so a typo in a prefix cannot produce an invalid ISBN).
func Classics() []Record {
	type c struct {
		first12, title, author, publisher string
		year                              int
		path                              []string
		cents                             int64
		rating                            float64
		ratings, sales, stock             int64
		pages                             int32
		desc                              string
	}
	fantasy := []string{"Science Fiction & Fantasy", "Epic Fantasy"}
	classics := []string{"Fiction", "Classics"}
	list := []c{
		{"978054792822", "The Hobbit", "J.R.R. Tolkien", "Houghton Mifflin Harcourt", 1937, fantasy, 1499, 4.7, 3000, 70000, 40, 300,
			"Bilbo Baggins, a comfortable hobbit of the Shire, is swept into a quest with thirteen dwarves and a wizard to win back a treasure guarded by the dragon Smaug."},
		{"978054792821", "The Fellowship of the Ring", "J.R.R. Tolkien", "Houghton Mifflin Harcourt", 1954, fantasy, 1899, 4.8, 5200, 60000, 25, 432,
			"Frodo inherits a ring of terrible power and sets out from the Shire with eight companions to destroy it in the fires of Mount Doom."},
		{"978074753269", "Harry Potter and the Philosopher's Stone", "J.K. Rowling", "Bloomsbury", 1997, []string{"Children's Books", "Middle Grade"}, 1099, 4.8, 9000, 120000, 60, 223,
			"On his eleventh birthday an orphaned boy learns that he is a wizard and leaves his unkind relatives for a school of witchcraft and wizardry."},
		{"978074753849", "Harry Potter and the Chamber of Secrets", "J.K. Rowling", "Bloomsbury", 1998, []string{"Children's Books", "Middle Grade"}, 1099, 4.7, 7000, 90000, 3, 251,
			"A second year at the school of magic, where a hidden chamber is opened and students are found petrified."},
		{"978014143951", "Pride and Prejudice", "Jane Austen", "Penguin Classics", 1813, classics, 899, 4.6, 4100, 50000, 30, 480,
			"Elizabeth Bennet and the proud Mr Darcy misjudge each other across ballrooms and drawing rooms in Regency England."},
		{"978014144114", "Jane Eyre", "Charlotte Brontë", "Penguin Classics", 1847, classics, 899, 4.5, 2600, 30000, 12, 624,
			"An orphaned governess finds independence, love and a terrible secret at Thornfield Hall."},
		{"978014243724", "Moby-Dick", "Herman Melville", "Penguin Classics", 1851, classics, 1299, 4.0, 1800, 20000, 0, 720,
			"Ishmael signs on to the whaler Pequod, whose captain Ahab hunts the white whale that took his leg."},
		{"978045152493", "1984", "George Orwell", "Signet Classics", 1949, []string{"Science Fiction & Fantasy", "Dystopian"}, 999, 4.6, 6500, 85000, 45, 328,
			"Winston Smith rewrites history for the Ministry of Truth under the gaze of Big Brother, and dares to keep a diary."},
		{"978006112008", "To Kill a Mockingbird", "Harper Lee", "Harper Perennial", 1960, classics, 1099, 4.8, 7200, 95000, 50, 336,
			"In a small Alabama town, Scout Finch watches her father defend a Black man falsely accused of a crime."},
		{"978044117271", "Dune", "Frank Herbert", "Ace", 1965, []string{"Science Fiction & Fantasy", "Space Opera"}, 1099, 4.7, 5800, 75000, 35, 688,
			"On the desert planet Arrakis, young Paul Atreides is drawn into a war over the spice that every empire needs."},
		{"978074327356", "The Great Gatsby", "F. Scott Fitzgerald", "Scribner", 1925, classics, 1199, 4.3, 3900, 65000, 20, 180,
			"Nick Carraway is drawn into the glittering parties of his mysterious neighbour Jay Gatsby on Long Island in the summer of 1922."},
	}
	out := make([]Record, len(list))
	for i, b := range list {
		published := bookstore.Date{Time: time.Date(b.year, time.January, 1, 0, 0, 0, 0, time.UTC)}
		out[i] = Record{
			ISBN:        b.first12 + string(ISBN13CheckDigit(b.first12)),
			Title:       b.title,
			Authors:     []string{b.author},
			Categories:  [][]string{b.path},
			Description: b.desc,
			PriceCents:  b.cents,
			Rating:      b.rating,
			RatingCount: b.ratings,
			SalesCount:  b.sales,
			Stock:       b.stock,
			PublishedAt: &published,
			Publisher:   b.publisher,
			Language:    "en",
			PageCount:   b.pages,
		}
	}
	return out
}
