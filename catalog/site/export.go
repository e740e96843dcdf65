package site

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ccauthz/ccauthz/catalog"
)

// Export writes the directory as a static site into dir (created if
// missing): every page of Pages and the assets. Existing files of the same
// names are replaced; nothing else in dir is touched. Entity names become
// file names, so each must be snake_case (catalog validation guarantees it;
// Export checks again rather than write outside dir).
func (s *Site) Export(d *Directory, dir string) (files int, err error) {
	for _, rel := range Pages(d) {
		base := strings.TrimSuffix(filepath.Base(rel), ".html")
		if strings.Contains(rel, "/") && !catalog.IsSnakeCase(base) {
			return files, fmt.Errorf("site: %q is not a safe page name", rel)
		}
		var buf bytes.Buffer
		if err := s.Render(&buf, d, Static, rel, nil); err != nil {
			return files, err
		}
		if err := writeFile(dir, rel, buf.Bytes()); err != nil {
			return files, err
		}
		files++
	}
	err = fs.WalkDir(Assets(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Assets(), p)
		if err != nil {
			return err
		}
		files++
		return writeFile(dir, "assets/"+p, b)
	})
	return files, err
}

func writeFile(dir, rel string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("site: %w", err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return fmt.Errorf("site: %w", err)
	}
	return nil
}
