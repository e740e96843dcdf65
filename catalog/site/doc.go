// Package site owns the unit-primitive directory: the HTML pages that show a
// catalog to people (an index with search and filters, a page per unit
// primitive, add-on and backend, the grant calculator and the catalog diff),
// their html/template templates and embedded assets, the live handler that
// `ccauthz serve` mounts under /catalog/ on the admin listener, and the static
// export of `ccauthz catalog site`. Both render the same templates with
// relative links, so a page works from a server, a file:// URL or a Pages
// subpath. It reads catalogs and bound service manifests and computes
// nothing of its own: grants come from catalog.Grant, diffs from
// catalog.Compare. It must never show a token, a key or a configuration
// secret, and it must not import the server: the server hands it a function
// that returns the current snapshot's catalog and manifests.
package site
