package docs

// Checks that keep the documentation honest: README.md stays a short front
// page that starts with the two commands CI and reviewers rely on, every
// relative link in the Markdown documents resolves (file and anchor), and
// nothing outside docs/ cites the unpublished design document instead of
// docs/PROTOCOL.md. This file is self-contained: other files of package
// docs may come and go.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// readmeLinesMax bounds README.md: a front page and a map, with reference
// material in docs/.
const readmeLinesMax = 250

// readmeHead is how README.md must start, byte for byte: CI and reviewers
// copy these two commands from it.
const readmeHead = "# AgentBill\n" +
	"\n" +
	"Run the service (embedded NATS with JetStream, data in `./data`, no setup):\n" +
	"\n" +
	"    go run ./cmd/agentbill serve\n" +
	"\n" +
	"Run every test:\n" +
	"\n" +
	"    ./scripts/test.sh\n"

// staleContract is the name of the design document readers cannot open.
const staleContract = "DESIGN" + ".md"

// repoRoot is the repository's root, relative to this package.
const repoRoot = ".."

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadmeIsAFrontPage(t *testing.T) {
	b := readRepoFile(t, "README.md")
	if !bytes.HasPrefix(b, []byte(readmeHead)) {
		t.Errorf("README.md does not start with the two commands; want its first lines to be:\n%s", readmeHead)
	}
	if got := bytes.Count(b, []byte("\n")); got > readmeLinesMax {
		t.Errorf("README.md has %d lines, more than %d: move reference material to docs/", got, readmeLinesMax)
	}
}

// markdownFiles are the documents whose links are checked.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "SECURITY.md", "BENCHMARKS.md"}
	inDocs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range inDocs {
		rel, err := filepath.Rel(repoRoot, f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.ToSlash(rel))
	}
	return files
}

var (
	linkRe       = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpanRe   = regexp.MustCompile("`[^`]*`")
	headingRe    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	inlineLinkRe = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// prose returns the lines of a Markdown document outside code blocks
// (fenced, or indented by four spaces or a tab), with their line numbers.
func prose(doc []byte) (lines []string, numbers []int) {
	fenced := false
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced || strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "\t") {
			continue
		}
		lines = append(lines, line)
		numbers = append(numbers, n)
	}
	return lines, numbers
}

// slug is the anchor GitHub gives a heading: lower case, inline markup
// dropped, every character but letters, digits, spaces, '-' and '_'
// removed, spaces turned into '-'.
func slug(heading string) string {
	heading = inlineLinkRe.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns every heading anchor of a document, with GitHub's -1,
// -2 suffixes for repeated headings.
func anchors(doc []byte) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	lines, _ := prose(doc)
	for _, line := range lines {
		m := headingRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := slug(m[1])
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

func TestRelativeLinksResolve(t *testing.T) {
	anchorCache := map[string]map[string]bool{}
	anchorsOf := func(rel string) map[string]bool {
		if a, ok := anchorCache[rel]; ok {
			return a
		}
		a := anchors(readRepoFile(t, rel))
		anchorCache[rel] = a
		return a
	}
	for _, file := range markdownFiles(t) {
		lines, numbers := prose(readRepoFile(t, file))
		for i, line := range lines {
			line = codeSpanRe.ReplaceAllString(line, "")
			for _, m := range linkRe.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				where := fmt.Sprintf("%s:%d: link %q", file, numbers[i], target)
				path, anchor, _ := strings.Cut(target, "#")
				rel := file
				if path != "" {
					rel = filepath.ToSlash(filepath.Join(filepath.Dir(file), path))
					if _, err := os.Stat(filepath.Join(repoRoot, rel)); err != nil {
						t.Errorf("%s: %s does not exist", where, rel)
						continue
					}
				}
				if anchor == "" {
					continue
				}
				if !strings.HasSuffix(rel, ".md") {
					t.Errorf("%s: an anchor into a file that is not Markdown", where)
					continue
				}
				if !anchorsOf(rel)[anchor] {
					t.Errorf("%s: %s has no heading with anchor #%s", where, rel, anchor)
				}
			}
		}
	}
}

// trackedFiles lists the files git tracks, relative to the repository's
// root; without git (an exported tree), every file under the root but
// .git and node_modules.
func trackedFiles(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err == nil {
		var files []string
		for _, f := range strings.Split(string(out), "\x00") {
			if f != "" {
				files = append(files, f)
			}
		}
		return files
	}
	t.Logf("git ls-files: %v; walking the tree instead", err)
	var files []string
	err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(repoRoot, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestNoStaleContractReferences(t *testing.T) {
	for _, f := range trackedFiles(t) {
		if strings.HasPrefix(f, "docs/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(f)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(staleContract)) {
			t.Errorf("%s mentions %s, which readers cannot open: cite docs/PROTOCOL.md and its section instead", f, staleContract)
		}
	}
}
