package sizing

import (
	"os"
	"path/filepath"
	"time"
)

// Language is a build language with its default resources.
type Language struct {
	Name     string
	CPU      int
	MemoryGB int
	Budget   time.Duration
}

// Languages are the defaults of rule 3 (docs/architecture.md), in detection order.
var (
	Rust    = Language{Name: "rust", CPU: 4, MemoryGB: 8, Budget: 60 * time.Minute}
	Go      = Language{Name: "go", CPU: 2, MemoryGB: 4, Budget: 30 * time.Minute}
	Java    = Language{Name: "java", CPU: 4, MemoryGB: 8, Budget: 45 * time.Minute}
	Generic = Language{Name: "generic", CPU: 2, MemoryGB: 4, Budget: 30 * time.Minute}
)

var markers = []struct {
	file string
	lang Language
}{
	{"Cargo.toml", Rust},
	{"go.mod", Go},
	{"pom.xml", Java},
	{"build.gradle", Java},
	{"build.gradle.kts", Java},
}

// LanguageByName returns the defaults of a named language.
func LanguageByName(name string) (Language, bool) {
	for _, l := range []Language{Rust, Go, Java, Generic} {
		if l.Name == name {
			return l, true
		}
	}
	return Language{}, false
}

// DetectLanguage looks for a marker file at the root of the build context.
// It returns Generic when none is there; an unreadable context is an error.
func DetectLanguage(contextDir string) (Language, string, error) {
	if _, err := os.Stat(contextDir); err != nil {
		return Language{}, "", err
	}
	for _, m := range markers {
		if _, err := os.Stat(filepath.Join(contextDir, m.file)); err == nil {
			return m.lang, m.file, nil
		}
	}
	return Generic, "", nil
}
