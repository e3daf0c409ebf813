package statuspage

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

// Cookie names: the __Host- prefix makes browsers refuse the cookie unless it is Secure, host-only
// and for path /, so it is used whenever the page is served over TLS.
const (
	cookieName       = "byob_status"
	secureCookieName = "__Host-byob_status"
)

// session is the cookie of a login: its expiry and an HMAC, under the daemon's key, of the expiry and
// the token used. The token itself is never stored; a token taken out of the configuration ends the
// sessions opened with it at the next request.
func (p *page) session(token string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + base64.RawURLEncoding.EncodeToString(p.mac(token, e))
}

func (p *page) mac(token, exp string) []byte {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte("byob-agent status page session\x00" + exp + "\x00" + token))
	return m.Sum(nil)
}

// validSession reports whether a cookie value is an unexpired session of a configured token.
func (p *page) validSession(v string) bool {
	e, sig, ok := strings.Cut(v, ".")
	if !ok || len(e) > 20 {
		return false
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil || !p.now().Before(time.Unix(exp, 0)) || time.Unix(exp, 0).After(p.now().Add(sessionTTL)) {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	match := 0
	for _, t := range p.tokens {
		match |= subtle.ConstantTimeCompare(got, p.mac(t, e))
	}
	return match == 1
}

// validToken compares a presented token with every configured one in constant time: hashing both
// first keeps the comparison's length fixed, so neither a token's length nor its prefix leaks.
func (p *page) validToken(given string) bool {
	g := sha256.Sum256([]byte(given))
	match := 0
	for _, t := range p.tokens {
		w := sha256.Sum256([]byte(t))
		match |= subtle.ConstantTimeCompare(g[:], w[:])
	}
	return match == 1
}

// authorized reports whether a request carries a session cookie, or a token as
// `Authorization: Bearer` (for scripts).
func (p *page) authorized(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return p.validToken(tok)
	}
	for _, name := range []string{secureCookieName, cookieName} {
		if c, err := r.Cookie(name); err == nil && p.validSession(c.Value) {
			return true
		}
	}
	return false
}

func (p *page) secure(r *http.Request) bool { return p.o.Secure || r.TLS != nil }

// setSession sets (or, with an empty value, clears) the session cookie.
func (p *page) setSession(w http.ResponseWriter, r *http.Request, value string, exp time.Time) {
	c := &http.Cookie{Name: cookieName, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if p.secure(r) {
		c.Name, c.Secure = secureCookieName, true
	}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires, c.MaxAge = exp, int(exp.Sub(p.now()).Seconds())
	}
	http.SetCookie(w, c)
}

func (p *page) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		p.render(w, http.StatusBadRequest, "login", loginView{Error: "The form could not be read."})
		return
	}
	if !p.validToken(r.PostForm.Get("token")) {
		p.log().Warn("status page: login refused", "remote", r.RemoteAddr)
		p.render(w, http.StatusUnauthorized, "login", loginView{Error: "That token is not accepted."})
		return
	}
	exp := p.now().Add(sessionTTL)
	p.setSession(w, r, p.session(r.PostForm.Get("token"), exp), exp)
	http.Redirect(w, r, Path, http.StatusSeeOther)
}

func (p *page) logout(w http.ResponseWriter, r *http.Request) {
	p.setSession(w, r, "", time.Time{})
	http.Redirect(w, r, Path+"login", http.StatusSeeOther)
}
