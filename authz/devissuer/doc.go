// Package devissuer is the development token issuer behind `ccauthz serve`
// without a config: an RSA key generated once in a state directory, its JWKS
// written next to it (trusted by the server as a file issuer), and a mint
// function for ready-to-paste example tokens. It is for local trials only;
// its `iss` (IssuerURL) is under the reserved .invalid TLD so it can never be
// mistaken for a real GitLab issuer.
package devissuer
