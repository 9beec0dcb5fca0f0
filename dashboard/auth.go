package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/agentbill/agentbill/httpapi"
	"github.com/agentbill/agentbill/internal/errcode"
	"github.com/agentbill/agentbill/keys"
	"github.com/agentbill/agentbill/ledger"
)

// How a browser signs in. The browser presents an API key once, in the
// sign-in form (POST /ui/login) or as /?key=agb_... (a link an operator
// can bookmark). The gateway checks it and then keeps it in a cookie
// that scripts cannot read (HttpOnly), that no other site's request
// carries (SameSite=Strict), and that is sent over HTTPS only when the
// page came over HTTPS (Secure). Every request authenticates the cookie's
// key again, from the key store, exactly like a Bearer key: revoking the
// key signs the browser out on its next request. Programs may send
// Authorization: Bearer instead of the cookie.
const (
	// CookieName is the cookie that holds the key.
	CookieName = "agentbill_key"
	// CookieMaxAge bounds how long a browser stays signed in.
	CookieMaxAge = 12 * time.Hour
	// AuthTimeout bounds one key lookup.
	AuthTimeout = 5 * time.Second
	// LoginBytesMax bounds the sign-in form (a key is 47 bytes).
	LoginBytesMax = 1024
)

// authenticate finds the request's key (the cookie, else the Bearer
// header) and checks that it may see the dashboard.
func (d *Dashboard) authenticate(ctx context.Context, r *http.Request) (*keys.Key, error) {
	var secret string
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		secret = c.Value
	} else if secret, err = httpapi.BearerSecret(r); err != nil {
		return nil, ledger.Errorf(ledger.CodeUnauthenticated, "sign in with an auditor or admin API key (the %s cookie, or Authorization: Bearer agb_...)", CookieName)
	}
	return d.check(ctx, secret)
}

// check looks a key up and requires a role that may read the event log
// (auditor or admin) and no customer binding: the dashboard shows every
// customer.
func (d *Dashboard) check(ctx context.Context, secret string) (*keys.Key, error) {
	ctx, cancel := context.WithTimeout(ctx, AuthTimeout)
	defer cancel()
	k, err := d.cfg.Keys.Authenticate(ctx, secret)
	if err != nil {
		return nil, err
	}
	if err := k.AuthorizeAction(keys.ActionAudit); err != nil {
		return nil, fmt.Errorf("%w (the dashboard needs an auditor or admin key)", err)
	}
	if k.CustomerID != "" {
		return nil, fmt.Errorf("%w: key %s is bound to customer %q; the dashboard shows every customer, so it needs a key bound to none",
			keys.ErrPermissionDenied, k.ID, truncate(k.CustomerID, 64))
	}
	return k, nil
}

// withKey serves h only to a request whose key may see the dashboard.
func (d *Dashboard) withKey(h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := d.authenticate(r.Context(), r); err != nil {
			d.log.Debug("dashboard request refused", "path", r.URL.Path, "err", err)
			httpapi.WriteError(w, err)
			return
		}
		h(w, r)
	}
}

// page serves the dashboard, or the sign-in form. GET /?key=agb_... signs
// in and redirects to / so the key leaves the address bar and history.
func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) {
	if secret := r.URL.Query().Get("key"); secret != "" {
		d.signIn(w, r, secret)
		return
	}
	if _, err := d.authenticate(r.Context(), r); err != nil {
		d.loginPage(w, http.StatusUnauthorized, signInHint(r, err))
		return
	}
	writePage(w, http.StatusOK, indexPage)
}

// signInHint is what the sign-in form says: nothing on a first visit,
// why the stored key stopped working otherwise.
func signInHint(r *http.Request, err error) string {
	if _, cerr := r.Cookie(CookieName); cerr != nil {
		return ""
	}
	return errcode.Classify(err).Message
}

// login is the sign-in form's POST.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, LoginBytesMax)
	if err := r.ParseForm(); err != nil {
		d.loginPage(w, http.StatusBadRequest, "the sign-in form could not be read")
		return
	}
	d.signIn(w, r, strings.TrimSpace(r.PostForm.Get("key")))
}

// signIn checks secret and, if it may see the dashboard, stores it in the
// cookie and redirects to the page; otherwise it shows the form again
// with the reason. A rejected key is logged at warn, without the key.
func (d *Dashboard) signIn(w http.ResponseWriter, r *http.Request, secret string) {
	k, err := d.check(r.Context(), secret)
	if err != nil {
		e := errcode.Classify(err)
		d.log.Warn("dashboard sign-in rejected", "code", e.Code, "err", e.Message, "remote", r.RemoteAddr)
		d.loginPage(w, httpapi.Status(e.Code), e.Message)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: secret, Path: "/", MaxAge: int(CookieMaxAge / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	d.log.Debug("dashboard sign-in", "key", k.ID, "role", k.Role)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout clears the cookie.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
