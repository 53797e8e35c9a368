package report

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// voidElements have no end tag (HTML Living Standard, 13.1.2).
var voidElements = map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true,
	"img": true, "input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}

// checkHTML fails t for each problem htmlProblems finds in doc.
func checkHTML(t *testing.T, doc string) {
	t.Helper()
	for _, p := range htmlProblems(doc) {
		t.Error(p)
	}
}

// htmlProblems is a strict well-formedness check on top of the HTML
// tokenizer: one doctype first; every non-void element closed, in order;
// no self-closing syntax on other elements; ids unique; no script element;
// and nothing that loads from outside the page (every src and href is a
// data: URI or a fragment). html.Parse would silently repair what this
// rejects.
func htmlProblems(doc string) (problems []string) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	z := html.NewTokenizer(strings.NewReader(doc))
	var stack []string
	ids := map[string]bool{}
	sawDoctype := false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if !errors.Is(z.Err(), io.EOF) {
				bad("tokenizer: %v", z.Err())
			}
			break
		}
		tok := z.Token()
		switch tt {
		case html.DoctypeToken:
			if sawDoctype || len(stack) > 0 {
				bad("doctype not first")
			}
			sawDoctype = true
		case html.StartTagToken, html.SelfClosingTagToken:
			if !sawDoctype {
				bad("<%s> before the doctype", tok.Data)
			}
			for _, a := range tok.Attr {
				switch a.Key {
				case "id":
					if ids[a.Val] {
						bad("id %q used twice", a.Val)
					}
					ids[a.Val] = true
				case "src", "href":
					if !strings.HasPrefix(a.Val, "data:") && !strings.HasPrefix(a.Val, "#") {
						bad("<%s %s=%q> loads from outside the page", tok.Data, a.Key, a.Val)
					}
				}
			}
			if tok.Data == "script" {
				bad("the page has a script element")
			}
			if voidElements[tok.Data] {
				continue
			}
			if tt == html.SelfClosingTagToken {
				bad("<%s/> is not a void element", tok.Data)
				continue
			}
			stack = append(stack, tok.Data)
		case html.EndTagToken:
			if voidElements[tok.Data] {
				bad("end tag of void element </%s>", tok.Data)
				continue
			}
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				bad("</%s> closes %v", tok.Data, stack)
				return problems
			}
			stack = stack[:len(stack)-1]
		}
	}
	if !sawDoctype {
		bad("no doctype")
	}
	if len(stack) > 0 {
		bad("unclosed elements %v", stack)
	}
	return problems
}

func base64Reader(s string) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, strings.NewReader(s))
}

// TestCheckHTML: the checker rejects what it must, so a page that passes
// it means something.
func TestCheckHTML(t *testing.T) {
	const head = "<!DOCTYPE html><html><body>"
	for _, doc := range []string{
		head + "<p><b>x</p></b></body></html>",
		head + "<div>x</body></html>",
		head + "<div>x",
		head + `<img src="http://example.com/a.png"></body></html>`,
		head + `<p id="a"></p><p id="a"></p></body></html>`,
		head + "<div/></body></html>",
		head + "<script>alert(1)</script></body></html>",
		"<html><body></body></html>",
	} {
		if len(htmlProblems(doc)) == 0 {
			t.Errorf("accepted %q", doc)
		}
	}
	if p := htmlProblems(head + `<p id="a">x<br><img src="data:image/png;base64,AA==" alt=""></p></body></html>`); len(p) > 0 {
		t.Errorf("rejected a valid page: %v", p)
	}
}
