package nickel

// expr is a node of the syntax tree.
type expr interface{ position() Pos }

type (
	numLit struct {
		pos Pos
		v   float64
	}
	strLit struct {
		pos   Pos
		parts []strPiece
	}
	strPiece struct {
		lit    string
		e      expr // nil for a literal piece
		isExpr bool
	}
	boolLit struct {
		pos Pos
		v   bool
	}
	nullLit struct{ pos Pos }
	enumLit struct {
		pos Pos
		tag string
	}
	arrayLit struct {
		pos   Pos
		elems []expr
	}
	varRef struct {
		pos  Pos
		name string
	}
	letExpr struct {
		pos   Pos
		name  string
		value expr
		body  expr
	}
	funExpr struct {
		pos    Pos
		params []string
		body   expr
	}
	appExpr struct {
		pos     Pos
		fn, arg expr
	}
	accessExpr struct {
		pos   Pos
		rec   expr
		field string
	}
	importExpr struct {
		pos  Pos
		file *sourceFile
	}
	mergeExpr struct {
		pos  Pos
		l, r expr
	}
	annotExpr struct {
		pos       Pos
		e         expr
		contracts []expr
	}
	enumType struct {
		pos  Pos
		tags []string
	}
	recordLit struct {
		pos    Pos
		fields []fieldLit
		open   bool // `..`: a record contract that accepts extra fields
	}
	// fieldLit is one `a.b.c | C | optional | default = v` entry.
	fieldLit struct {
		pos       Pos
		path      []string
		value     expr // nil when only declared
		contracts []expr
		optional  bool
		isDefault bool
	}
)

func (e *numLit) position() Pos     { return e.pos }
func (e *strLit) position() Pos     { return e.pos }
func (e *boolLit) position() Pos    { return e.pos }
func (e *nullLit) position() Pos    { return e.pos }
func (e *enumLit) position() Pos    { return e.pos }
func (e *arrayLit) position() Pos   { return e.pos }
func (e *varRef) position() Pos     { return e.pos }
func (e *letExpr) position() Pos    { return e.pos }
func (e *funExpr) position() Pos    { return e.pos }
func (e *appExpr) position() Pos    { return e.pos }
func (e *accessExpr) position() Pos { return e.pos }
func (e *importExpr) position() Pos { return e.pos }
func (e *mergeExpr) position() Pos  { return e.pos }
func (e *annotExpr) position() Pos  { return e.pos }
func (e *enumType) position() Pos   { return e.pos }
func (e *recordLit) position() Pos  { return e.pos }
