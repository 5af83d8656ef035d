package catalog

import "testing"

func TestNormalizeISBN(t *testing.T) {
	cases := []struct {
		name, in, want, err string
	}{
		{name: "ISBN-13 with dashes", in: "978-0-306-40615-7", want: "9780306406157"},
		{name: "ISBN-13 digits only", in: "9780306406157", want: "9780306406157"},
		{name: "ISBN-13 with spaces", in: " 978 0 306 40615 7 ", want: "9780306406157"},
		{name: "ISBN-13 979 prefix", in: "979-10-90636-07-1", want: "9791090636071"},
		{name: "ISBN-10 converted", in: "0-306-40615-2", want: "9780306406157"},
		{name: "ISBN-10 digits only", in: "0306406152", want: "9780306406157"},
		{name: "ISBN-10 check digit X", in: "0-8044-2957-X", want: "9780804429573"},
		{name: "ISBN-10 check digit x", in: "080442957x", want: "9780804429573"},
		{name: "ISBN-10 all zeros", in: "0000000000", want: "9780000000002"},
		{name: "ISBN-10 nines", in: "9999999999", want: "9789999999991"},

		{name: "ISBN-10 bad check digit", in: "0-306-40615-3", err: "ISBN 0-306-40615-3: bad check digit, want 2"},
		{name: "ISBN-10 wants X", in: "0-8044-2957-1", err: "ISBN 0-8044-2957-1: bad check digit, want X"},
		{name: "ISBN-13 bad check digit", in: "978-0-306-40615-8", err: "ISBN 978-0-306-40615-8: bad check digit, want 7"},
		{name: "ISBN-13 not a book prefix", in: "9771234567898", err: "ISBN 9771234567898: an ISBN-13 starts with 978 or 979"},
		{name: "too short", in: "12345", err: "ISBN 12345: 5 digits, want 10 or 13"},
		{name: "eleven digits", in: "97803064061", err: "ISBN 97803064061: 11 digits, want 10 or 13"},
		{name: "too long", in: "97803064061570", err: "ISBN 97803064061570: too many digits, want 10 or 13"},
		{name: "empty", in: "", err: `ISBN "": empty`},
		{name: "only dashes", in: "--", err: "ISBN --: empty"},
		{name: "letter O for zero", in: "0-306-4O615-2", err: `ISBN "0-306-4O615-2": invalid character 'O'`},
		{name: "X not last", in: "X306406152", err: "ISBN X306406152: X is allowed only as the check digit of an ISBN-10"},
		{name: "X in ISBN-13", in: "978030640615X", err: "ISBN 978030640615X: X is allowed only as the check digit of an ISBN-10"},
		{name: "prefix word", in: "ISBN 9780306406157", err: `ISBN "ISBN 9780306406157": invalid character 'I'`},
		{name: "long garbage is cut", in: "0123456789-0123456789-0123456789-0123456789", err: `ISBN "0123456789-0123456789-0123456789"...: too many digits, want 10 or 13`},
		{name: "control character", in: "978\n0306406157", err: `ISBN "978\n0306406157": invalid character '\n'`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := NormalizeISBN(c.in)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("NormalizeISBN(%q) = %q, %v; want error %q", c.in, got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("NormalizeISBN(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			// The 13-digit form is a fixed point.
			if again, err := NormalizeISBN(got); err != nil || again != got {
				t.Fatalf("NormalizeISBN(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestISBN13CheckDigit(t *testing.T) {
	cases := []struct {
		name, first12 string
		want          byte
	}{
		{"zero remainder", "978030640615", '7'},
		{"check digit 0", "978000000000", '2'},
		{"979", "979109063607", '1'},
		{"all zeros", "000000000000", '0'},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ISBN13CheckDigit(c.first12); got != c.want {
				t.Fatalf("ISBN13CheckDigit(%q) = %c, want %c", c.first12, got, c.want)
			}
		})
	}
	for _, bad := range []string{"97803064061", "97803064061X", "9780306406157"} {
		t.Run("panics on "+bad, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("ISBN13CheckDigit(%q) did not panic", bad)
				}
			}()
			ISBN13CheckDigit(bad)
		})
	}
}
