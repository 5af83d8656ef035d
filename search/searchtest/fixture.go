// Package searchtest holds what the tests of every search engine share: the engine
// contract suite (Run), its hand-checked fixture, and the demo catalog as search
// documents (DemoDocuments) for relevance tests and benchmarks.
package searchtest

import (
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/search"
)

// WeirdSlug is a category value made of filter-language syntax: engines must treat it
// as data.
const WeirdSlug = `odd"slug' or 1=1 \ x`

// Fixture book keys, in the order of Fixture().
const (
	HP1 = iota // Harry Potter and the Philosopher's Stone
	HP2        // Harry Potter and the Chamber of Secrets
	Hobbit
	LOTR
	Orient  // Murder on the Orient Express
	Ackroyd // The Murder of Roger Ackroyd
	Brief   // A Brief History of Time
	Sapiens
	Guns // The Guns of August
	Zauberberg
	Prince // Le Petit Prince
	Omens  // Good Omens
	Cosmos
	Debut  // an unrated book with no publication date
	Quotes // a book whose strings are full of quotes and markup
	NumFixture
)

// FixtureID returns the id of fixture book k.
func FixtureID(k int) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte{'b', 'k', byte(k)})
}

// FixtureAuthorID returns the id of a fixture author.
func FixtureAuthorID(name string) uuid.UUID { return AuthorID(name) }

// isbn completes a 12-digit body with its check digit.
func isbn(body string) string { return body + string(catalog.ISBN13CheckDigit(body)) }

// FixtureISBN returns the ISBN-13 of fixture book k.
func FixtureISBN(k int) string {
	return isbn("978000000" + string(rune('0'+k/100)) + string(rune('0'+k/10%10)) + string(rune('0'+k%10)))
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// Category slugs and names of the fixture.
var fixtureCategories = map[string]string{
	"fiction": "Fiction", "fantasy": "Fantasy", "mystery": "Mystery",
	"nonfiction": "Non-Fiction", "history": "History", "science": "Science",
	WeirdSlug: `Odd "Slug" <b>`,
}

// Fixture returns the contract suite's books. Their numbers are chosen so that every
// count the suite checks can be verified by hand:
//
//	key         price  rating (count)  sales   published   stock lang categories
//	HP1           899  4.8 (5000)      90000   1997-06-26  yes   en   fiction fantasy
//	HP2           999  4.7 (4000)      80000   1998-07-02  yes   en   fiction fantasy
//	Hobbit       1250  4.7 (3000)      70000   1937-09-21  yes   en   fiction fantasy
//	LOTR         2999  4.9 (6000)      60000   1954-07-29  no    en   fiction fantasy
//	Orient       1099  4.3 (2000)      30000   1934-01-01  yes   en   fiction mystery
//	Ackroyd       950  4.4 (1500)      20000   1926-06-01  no    en   fiction mystery
//	Brief        1899  4.6 (2500)      50000   1988-04-01  yes   en   nonfiction science
//	Sapiens      2450  4.5 (4500)      55000   2011-01-01  yes   en   nonfiction history
//	Guns         3500  4.2 (800)        8000   1962-01-01  yes   en   nonfiction history
//	Zauberberg   2200  4.1 (300)        3000   1924-11-01  yes   de   fiction
//	Prince        700  4.8 (3500)      40000   1943-04-06  yes   fr   fiction fantasy
//	Omens        1599  4.6 (2200)      25000   1990-05-01  yes   en   fiction fantasy
//	Cosmos       5499  4.7 (1800)      15000   1980-01-01  no    en   nonfiction science
//	Debut         299  -   (0)             0   unknown     yes   en   fiction mystery
//	Quotes       1500  3.5 (10)          100   2001-01-01  yes   es   WeirdSlug
func Fixture() []search.Document {
	type row struct {
		title, desc string
		authors     []string
		price       int64
		rating      float64
		ratings     int64
		sales       int64
		published   time.Time
		inStock     bool
		lang        string
		cats        []string
	}
	rows := [NumFixture]row{
		HP1: {"Harry Potter and the Philosopher's Stone", "An orphaned boy discovers on his eleventh birthday that he is a wizard, and leaves for a school of magic.",
			[]string{"J.K. Rowling"}, 899, 4.8, 5000, 90000, date(1997, 6, 26), true, "en", []string{"fiction", "fantasy"}},
		HP2: {"Harry Potter and the Chamber of Secrets", "A second year at the school of magic, where a hidden chamber is opened and students are found petrified.",
			[]string{"J.K. Rowling"}, 999, 4.7, 4000, 80000, date(1998, 7, 2), true, "en", []string{"fiction", "fantasy"}},
		Hobbit: {"The Hobbit", "Bilbo Baggins, a comfortable creature of the Shire, is swept into a quest for a dragon's gold.",
			[]string{"J.R.R. Tolkien"}, 1250, 4.7, 3000, 70000, date(1937, 9, 21), true, "en", []string{"fiction", "fantasy"}},
		LOTR: {"The Lord of the Rings", "The fellowship sets out to destroy the One Ring in the fires where it was forged.",
			[]string{"J.R.R. Tolkien"}, 2999, 4.9, 6000, 60000, date(1954, 7, 29), false, "en", []string{"fiction", "fantasy"}},
		Orient: {"Murder on the Orient Express", "A train is stopped by snow, a passenger is dead, and Hercule Poirot has twelve suspects.",
			[]string{"Agatha Christie"}, 1099, 4.3, 2000, 30000, date(1934, 1, 1), true, "en", []string{"fiction", "mystery"}},
		Ackroyd: {"The Murder of Roger Ackroyd", "A village doctor narrates the case that made Hercule Poirot famous.",
			[]string{"Agatha Christie"}, 950, 4.4, 1500, 20000, date(1926, 6, 1), false, "en", []string{"fiction", "mystery"}},
		Brief: {"A Brief History of Time", "From the big bang to black holes, a cosmologist explains space and time for everyone.",
			[]string{"Stephen Hawking"}, 1899, 4.6, 2500, 50000, date(1988, 4, 1), true, "en", []string{"nonfiction", "science"}},
		Sapiens: {"Sapiens: A Brief History of Humankind", "How an unremarkable ape came to rule the planet, in three revolutions.",
			[]string{"Yuval Noah Harari"}, 2450, 4.5, 4500, 55000, date(2011, 1, 1), true, "en", []string{"nonfiction", "history"}},
		Guns: {"The Guns of August", "The first month of the Great War, and the plans that failed in it.",
			[]string{"Barbara W. Tuchman"}, 3500, 4.2, 800, 8000, date(1962, 1, 1), true, "en", []string{"nonfiction", "history"}},
		Zauberberg: {"Der Zauberberg", "Ein junger Ingenieur besucht seinen Vetter in einem Sanatorium in den Bergen.",
			[]string{"Thomas Mann"}, 2200, 4.1, 300, 3000, date(1924, 11, 1), true, "de", []string{"fiction"}},
		Prince: {"Le Petit Prince", "Un aviateur rencontre dans le désert un petit garçon venu d'une autre planète.",
			[]string{"Antoine de Saint-Exupéry"}, 700, 4.8, 3500, 40000, date(1943, 4, 6), true, "fr", []string{"fiction", "fantasy"}},
		Omens: {"Good Omens", "An angel and a demon who have grown fond of the world try to stop the apocalypse.",
			[]string{"Terry Pratchett", "Neil Gaiman"}, 1599, 4.6, 2200, 25000, date(1990, 5, 1), true, "en", []string{"fiction", "fantasy"}},
		Cosmos: {"Cosmos", "A journey through space and the story of science, from the Ionian coast to the planets.",
			[]string{"Carl Sagan"}, 5499, 4.7, 1800, 15000, date(1980, 1, 1), false, "en", []string{"nonfiction", "science"}},
		Debut: {"The Quiet Lake", "A debut novel: a body in the reeds, and a village that would rather not know.",
			[]string{"Jane Newcomer"}, 299, 0, 0, 0, time.Time{}, true, "en", []string{"fiction", "mystery"}},
		Quotes: {`Quotes & Escapes <i>"Vol. 1"</i>`, `A book about 'quoting' "strings" \ and <script>markup</script>.`,
			[]string{`Seamus O'Brien "The Quote"`}, 1500, 3.5, 10, 100, date(2001, 1, 1), true, "es", []string{WeirdSlug}},
	}
	docs := make([]search.Document, NumFixture)
	for k, r := range rows {
		d := search.Document{
			ID: FixtureID(k), ISBN: FixtureISBN(k), Title: r.title, Description: r.desc,
			PriceCents: r.price, Rating: r.rating, RatingCount: r.ratings, SalesCount: r.sales,
			PublishedAt: r.published, InStock: r.inStock, Language: r.lang,
		}
		for _, a := range r.authors {
			d.Authors = append(d.Authors, a)
			d.AuthorIDs = append(d.AuthorIDs, FixtureAuthorID(a))
		}
		for _, c := range r.cats {
			d.Categories = append(d.Categories, c)
			d.CategoryNames = append(d.CategoryNames, fixtureCategories[c])
		}
		docs[k] = d
	}
	return docs
}
