// argocd-lua runs an Argo CD resource health script the way Argo CD's application controller
// runs a health check from argocd-cm (resource.customizations.health.<group>_<kind>, useOpenLibs
// unset), and prints the verdict as one JSON line: {"status": "...", "message": "..."}.
//
//	argocd-lua SCRIPT [OBJECT]     OBJECT: a JSON or YAML file; "-" or absent: stdin
//
// What is reproduced, after argo-cd's util/lua/lua.go (VM.runLua, VM.ExecuteHealthLua,
// decodeValue) and util/lua/oslib_safe.go (OpenSafeOs, SafeOsLoader, osTime, osDate, strftime),
// on the same interpreter (github.com/yuin/gopher-lua, pinned in go.mod):
//
//   - The libraries: a state opened with SkipOpenLibs, then OpenPackage, OpenBase, OpenTable and
//     argo-cd's OpenSafeOs, each called with its library name. OpenSafeOs calls
//     RegisterModule(lua.TabLibName, ...), and RegisterModule returns an already loaded module
//     unchanged: "table" is loaded, so it adds nothing, and the global `os` stays nil. The safe
//     os is preloaded as "os": `local os = require("os")` is the only way to it. No string,
//     math, io, coroutine or debug library (strings have no metatable, so ("x"):sub fails too);
//     the base library has tonumber, tostring, type, pairs, ipairs, pcall, loadstring...
//   - The safe os: os.time() is time.Now().Unix(); os.time(t) reads sec, min, hour (default 12),
//     day, month, year (default -1) from the table and builds the time in the local zone
//     (time.Local, so TZ matters); isdst is ignored. os.date(fmt, t): a leading "!" (every
//     leading "!") selects UTC *only for now*: with a second argument the time is
//     time.Unix(t, 0), which is local, so os.date("!...", t) formats local time. "*t" gives
//     year, month, day, hour, min, sec, wday, yday = 0, isdst = false. Formats: argo-cd's
//     conversions mapped to Go layouts (so %a is the literal "mon", %x is "15/04/05"), %w, "%%";
//     any other conversion is copied as is.
//   - The object: JSON decoded as Kubernetes decodes objects into unstructured (integers int64,
//     other numbers float64), YAML converted to JSON first (sigs.k8s.io/yaml), then decodeValue's
//     conversion: numbers become Lua numbers, arrays are filled with Append, which skips nil, so a
//     null inside an array is dropped (no hole), and a null field is absent.
//   - The run: a 1 s context.WithTimeout set on the state, obj as a global, DoString(script).
//   - The result: a script error, or a returned value that is neither a table nor nil, is health
//     Unknown with the error as message (what gitops-engine's GetResourceHealth makes of the
//     error); a table is encoded with layeh.com/gopher-json and decoded into {status, message};
//     a JSON type error (an empty table encodes as [], a number where a string belongs) and a nil
//     result give an empty status ("": Argo CD falls back to no health from the script); a status
//     other than Healthy, Progressing, Degraded, Suspended, Missing or Unknown is Unknown with
//     "Lua returned an invalid health status".
//
// Not reproduced: gitops-engine's GetResourceHealth answers Progressing "Pending deletion" for an
// object with a deletionTimestamp without running the script; this program always runs it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	_ "time/tzdata" // TZ=Area/City works even where the system has no zoneinfo

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

// health is gitops-engine's HealthStatus as the Lua result is decoded into it.
type health struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// verdict is what this program prints: both fields always present.
type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

const timeout = 1 * time.Second

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua SCRIPT [OBJECT|-]   (OBJECT: JSON or YAML; default stdin)")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	var input []byte
	if len(os.Args) == 3 && os.Args[2] != "-" {
		input, err = os.ReadFile(os.Args[2])
	} else {
		input, err = io.ReadAll(os.Stdin)
	}
	if err != nil {
		fail(err)
	}
	object, err := decodeObject(input)
	if err != nil {
		fail(fmt.Errorf("the object: %w", err))
	}
	h, err := executeHealth(object, string(script))
	if err != nil {
		h = health{Status: "Unknown", Message: err.Error()}
	}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	if err := out.Encode(verdict(h)); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argocd-lua:", err)
	os.Exit(1)
}

// decodeObject: YAML (a superset of JSON) to JSON, then JSON to an object as unstructured holds
// it (apimachinery's util/json: UseNumber, then int64 when the number is an integer, else float64).
func decodeObject(input []byte) (map[string]any, error) {
	doc, err := yaml.YAMLToJSON(input)
	if err != nil {
		return nil, err
	}
	decoder := json.NewDecoder(bytes.NewReader(doc))
	decoder.UseNumber()
	var object map[string]any
	if err := decoder.Decode(&object); err != nil {
		return nil, err
	}
	if object == nil {
		return nil, errors.New("not a JSON object")
	}
	converted, err := convertNumbers(object)
	if err != nil {
		return nil, err
	}
	return converted.(map[string]any), nil
}

func convertNumbers(value any) (any, error) {
	switch v := value.(type) {
	case map[string]any:
		for key, item := range v {
			converted, err := convertNumbers(item)
			if err != nil {
				return nil, err
			}
			v[key] = converted
		}
		return v, nil
	case []any:
		for i, item := range v {
			converted, err := convertNumbers(item)
			if err != nil {
				return nil, err
			}
			v[i] = converted
		}
		return v, nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		return v.Float64()
	}
	return value, nil
}

// executeHealth is runLua + ExecuteHealthLua: an error return is what Argo CD shows as Unknown.
func executeHealth(object map[string]any, script string) (health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true},
			lua.LString(lib.name)); err != nil {
			return health{}, err
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, object))
	if err := l.DoString(script); err != nil {
		return health{}, err
	}

	result := l.Get(-1)
	switch result.Type() {
	case lua.LTTable:
	case lua.LTNil:
		return health{}, nil
	default:
		return health{}, fmt.Errorf("expect table output from Lua script, not %s", result.Type().String())
	}
	encoded, err := luajson.Encode(result)
	if err != nil {
		return health{}, err
	}
	var h health
	if err := json.Unmarshal(encoded, &h); err != nil {
		var typeError *json.UnmarshalTypeError
		if errors.As(err, &typeError) {
			return health{}, nil
		}
		return health{}, err
	}
	switch h.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
		return h, nil
	}
	return health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
}

// toLua is decodeValue: the Go value of an unstructured object as a Lua value.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		array := l.CreateTable(len(v), 0)
		for _, item := range v {
			array.Append(toLua(l, item)) // Append ignores nil: a null item is dropped
		}
		return array
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

// ---- argo-cd's safe os library ---------------------------------------------------------------

var safeOsFunctions = map[string]lua.LGFunction{"time": osTime, "date": osDate}

// openSafeOs is what argo-cd's OpenSafeOs does: register the functions as the module named
// lua.TabLibName ("table"), not "os"; "table" is already loaded, so nothing changes.
func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOsFunctions))
	return 1
}

// safeOsLoader is package.preload.os: require("os") returns a table with time and date.
func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOsFunctions))
	return 1
}

func osTime(l *lua.LState) int {
	if l.GetTop() == 0 {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	}
	fields := l.CheckTable(1)
	field := func(name string, otherwise int) int {
		if n, ok := fields.RawGetString(name).(lua.LNumber); ok {
			return int(n)
		}
		return otherwise
	}
	t := time.Date(field("year", -1), time.Month(field("month", -1)), field("day", -1),
		field("hour", 12), field("min", 0), field("sec", 0), 0, time.Local)
	l.Push(lua.LNumber(t.Unix()))
	return 1
}

func osDate(l *lua.LState) int {
	t := time.Now()
	format := "%c"
	if l.GetTop() >= 1 {
		format = l.CheckString(1)
		if strings.HasPrefix(format, "!") {
			t = time.Now().UTC()
			format = strings.TrimLeft(format, "!")
		}
		if l.GetTop() >= 2 {
			t = time.Unix(l.CheckInt64(2), 0) // local time, "!" or not
		}
		if strings.HasPrefix(format, "*t") {
			fields := l.NewTable()
			fields.RawSetString("year", lua.LNumber(t.Year()))
			fields.RawSetString("month", lua.LNumber(t.Month()))
			fields.RawSetString("day", lua.LNumber(t.Day()))
			fields.RawSetString("hour", lua.LNumber(t.Hour()))
			fields.RawSetString("min", lua.LNumber(t.Minute()))
			fields.RawSetString("sec", lua.LNumber(t.Second()))
			fields.RawSetString("wday", lua.LNumber(t.Weekday()+1))
			fields.RawSetString("yday", lua.LNumber(0))
			fields.RawSetString("isdst", lua.LFalse)
			l.Push(fields)
			return 1
		}
	}
	l.Push(lua.LString(strftime(t, format)))
	return 1
}

// goLayouts: the conversions argo-cd's strftime knows, as Go layouts (t.Format decides what they
// print: "mon" has no layout element, so %a prints "mon").
var goLayouts = map[byte]string{
	'a': "mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'c': "02 Jan 06 15:04 MST",
	'd': "02", 'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM",
	'P': "pm", 'S': "05", 'x': "15/04/05", 'X': "15:04:05", 'y': "06", 'Y': "2006",
	'z': "-0700", 'Z': "MST",
}

// strftime behaves as argo-cd's: "%%" is "%", "%c" converts c (unknown conversions are copied
// with their "%"), a "%" at the very end is copied.
func strftime(t time.Time, format string) string {
	var out strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i == len(format)-1 {
			out.WriteByte(c)
			continue
		}
		i++
		conversion := format[i]
		switch layout, known := goLayouts[conversion]; {
		case conversion == '%':
			out.WriteByte('%')
		case known:
			out.WriteString(t.Format(layout))
		case conversion == 'w':
			fmt.Fprint(&out, int(t.Weekday()))
		default:
			out.WriteByte('%')
			out.WriteByte(conversion)
		}
	}
	return out.String()
}
