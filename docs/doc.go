// Package docs holds ccauthz's reference pages (docs/<topic>.md) and the
// test that keeps their examples honest: every ```console block of the
// README and the docs is run, as a newcomer would run it from a fresh clone,
// against a freshly built bin/ccauthz and the bundled example catalog,
// offline, and its output compared with what the page shows.
//
// It has no code: the pages are the product. It must not be imported.
package docs
