package dashboard

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"strconv"
)

// loginTemplate is the sign-in form, with the reason a key was refused.
var loginTemplate = template.Must(template.ParseFS(assetFS, "assets/login.html"))

// loginPage writes the sign-in form with status and an optional message.
func (d *Dashboard) loginPage(w http.ResponseWriter, status int, message string) {
	var b bytes.Buffer
	if err := loginTemplate.Execute(&b, struct{ Message string }{message}); err != nil {
		d.log.Error("dashboard: sign-in page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writePage(w, status, b.Bytes())
}

// indexPage is the dashboard itself, served to a signed-in browser.
//
//go:embed assets/index.html
var indexPage []byte

func writePage(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
