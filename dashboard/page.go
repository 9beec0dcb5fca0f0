package dashboard

import (
	"bytes"
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

// serveAsset writes an embedded HTML page.
func (d *Dashboard) serveAsset(w http.ResponseWriter, name string) {
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		d.log.Error("dashboard: page", "name", name, "err", errNoAsset)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writePage(w, http.StatusOK, b)
}

func writePage(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func itoa(n int) string { return strconv.Itoa(n) }
