package credprovider

// These tests pin wire.go's mirror to the upstream types it replaces in the
// daemon (kept out of nri-csigd for its memory, see wire.go): k8s.io/kubelet
// is imported here, in tests only. A field renamed, retagged, retyped,
// missing or added on either side fails TestWireTypesMatchUpstream, and the
// documents below decode and encode the same through both.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletconfig "k8s.io/kubelet/config/v1"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
)

// mirrors pairs each local wire type with the upstream type it mirrors.
var mirrors = []struct {
	name            string
	local, upstream reflect.Type
}{
	{"CredentialProviderConfig", reflect.TypeFor[CredentialProviderConfig](), reflect.TypeFor[kubeletconfig.CredentialProviderConfig]()},
	{"CredentialProviderRequest", reflect.TypeFor[CredentialProviderRequest](), reflect.TypeFor[credentialproviderv1.CredentialProviderRequest]()},
	{"CredentialProviderResponse", reflect.TypeFor[CredentialProviderResponse](), reflect.TypeFor[credentialproviderv1.CredentialProviderResponse]()},
	{"Duration", reflect.TypeFor[Duration](), reflect.TypeFor[metav1.Duration]()},
}

var (
	marshalerType   = reflect.TypeFor[json.Marshaler]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// ownJSON reports whether t encodes and decodes itself (metav1.Duration
// and its mirror): its wire form is checked by TestDurationMatchesUpstream.
func ownJSON(t reflect.Type) bool {
	return t.Implements(marshalerType) && reflect.PointerTo(t).Implements(unmarshalerType)
}

// describe is t's JSON shape without its struct fields: "*struct",
// "[]string", "map[string]struct", "json" for a type with its own methods.
func describe(t reflect.Type) string {
	switch {
	case ownJSON(t):
		return "json"
	case t.Kind() == reflect.Pointer:
		return "*" + describe(t.Elem())
	case t.Kind() == reflect.Slice:
		return "[]" + describe(t.Elem())
	case t.Kind() == reflect.Map:
		return "map[" + describe(t.Key()) + "]" + describe(t.Elem())
	}
	return t.Kind().String()
}

// shape maps each JSON path of t ("providers[].env[].name") to its tag
// options and shape, as encoding/json sees them: embedded structs tagged
// `json:""` are inlined, unexported and "-" fields are not on the wire.
func shape(t reflect.Type) map[string]string {
	out := map[string]string{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for k := t.Kind(); k == reflect.Pointer || k == reflect.Slice || k == reflect.Map; k = t.Kind() {
			switch k {
			case reflect.Slice:
				path += "[]"
			case reflect.Map:
				path += "{}"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || ownJSON(t) {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if tag == "-" || !f.IsExported() && !f.Anonymous {
				continue
			}
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct && !ownJSON(f.Type) {
				walk(f.Type, path) // inlined, as TypeMeta `json:""`
				continue
			}
			if name == "" {
				name = f.Name
			}
			p := strings.TrimPrefix(path+"."+name, ".")
			out[p] = strings.TrimSpace(opts + " " + describe(f.Type))
			walk(f.Type, p)
		}
	}
	walk(t, "")
	return out
}

// shapeDiff lists how local's JSON shape differs from upstream's.
func shapeDiff(local, upstream reflect.Type) []string {
	l, u := shape(local), shape(upstream)
	var diffs []string
	for p, us := range u {
		ls, ok := l[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s (%s) is missing locally", p, us))
		case ls != us:
			diffs = append(diffs, fmt.Sprintf("%s is %q locally, %q upstream", p, ls, us))
		}
	}
	for p, ls := range l {
		if _, ok := u[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s (%s) is local only, not upstream", p, ls))
		}
	}
	sort.Strings(diffs)
	return diffs
}

func TestWireTypesMatchUpstream(t *testing.T) {
	for _, m := range mirrors {
		for _, d := range shapeDiff(m.local, m.upstream) {
			t.Errorf("%s vs %s: %s", m.name, m.upstream, d)
		}
		if ownJSON(m.local) != ownJSON(m.upstream) {
			t.Errorf("%s: encodes itself locally %v, upstream %v", m.name, ownJSON(m.local), ownJSON(m.upstream))
		}
	}
	// The walk reaches every leaf: a sample the shape must hold.
	s := shape(reflect.TypeFor[CredentialProviderConfig]())
	for p, want := range map[string]string{"kind": "omitempty string", "providers[].env[].value": "string",
		"providers[].defaultCacheDuration": "*json", "providers[].tokenAttributes.requireServiceAccount": "*bool"} {
		if s[p] != want {
			t.Errorf("shape(CredentialProviderConfig)[%q] = %q; want %q", p, s[p], want)
		}
	}
}

// The comparison catches a renamed field, a lost omitempty, a changed type
// and a missing or extra one.
func TestShapeDiffCatchesDrift(t *testing.T) {
	type renamed struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	type lostOmitempty struct {
		TypeMeta      `json:""`
		CacheKeyType  PluginCacheKeyType    `json:"cacheKeyType"`
		CacheDuration *Duration             `json:"cacheDuration"`
		Auth          map[string]AuthConfig `json:"auth,omitempty"`
	}
	type retyped struct {
		Name  string `json:"name"`
		Value []byte `json:"value"`
	}
	type nested struct {
		TypeMeta  `json:""`
		Providers []struct {
			Name string `json:"name"`
		} `json:"providers"`
	}
	type extra struct {
		TypeMeta  `json:""`
		Image     string `json:"image"`
		Namespace string `json:"namespace"`
	}
	for name, c := range map[string]struct {
		local, upstream reflect.Type
		want            string
	}{
		"renamed":        {reflect.TypeFor[renamed](), reflect.TypeFor[credentialproviderv1.AuthConfig](), "username (string) is missing locally"},
		"lost omitempty": {reflect.TypeFor[lostOmitempty](), reflect.TypeFor[credentialproviderv1.CredentialProviderResponse](), `cacheDuration is "*json" locally, "omitempty *json" upstream`},
		"retyped":        {reflect.TypeFor[retyped](), reflect.TypeFor[kubeletconfig.ExecEnvVar](), `value is "[]uint8" locally, "string" upstream`},
		"extra":          {reflect.TypeFor[extra](), reflect.TypeFor[credentialproviderv1.CredentialProviderRequest](), "namespace (string) is local only"},
		"missing":        {reflect.TypeFor[CredentialProviderResponse](), reflect.TypeFor[credentialproviderv1.CredentialProviderRequest](), "serviceAccountToken (omitempty string) is missing locally"},
		"nested missing": {reflect.TypeFor[nested](), reflect.TypeFor[kubeletconfig.CredentialProviderConfig](), "providers[].matchImages ([]string) is missing locally"},
	} {
		diffs := shapeDiff(c.local, c.upstream)
		if !strings.Contains(strings.Join(diffs, "\n"), c.want) {
			t.Errorf("%s: shapeDiff = %q; want one containing %q", name, diffs, c.want)
		}
	}
}

// yamlToJSON is parseConfig's first step: YAML to a generic value to JSON.
func yamlToJSON(t *testing.T, doc string) []byte {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// strict decodes as config.go and exec.go do: unknown fields refused.
func strict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// generic is v's JSON as a generic value, for comparing encodings.
func generic(t *testing.T, v any) any {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	var g any
	if err := json.Unmarshal(js, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// sameThroughBoth decodes data strictly into a new local and a new
// upstream value and checks they accept or refuse it alike and, accepted,
// encode it the same.
// A name starting "refused" is a document both must refuse.
func sameThroughBoth(t *testing.T, name string, data []byte, local, upstream any) {
	t.Helper()
	lerr, uerr := strict(data, local), strict(data, upstream)
	if (lerr == nil) != (uerr == nil) {
		t.Errorf("%s: decoding %s: local error %v, upstream error %v", name, data, lerr, uerr)
		return
	}
	if refused := strings.HasPrefix(name, "refused"); refused != (lerr != nil) {
		t.Errorf("%s: decoding %s: error %v through both; want refused %v", name, data, lerr, refused)
	}
	if lerr != nil {
		return
	}
	if l, u := generic(t, local), generic(t, upstream); !reflect.DeepEqual(l, u) {
		t.Errorf("%s: local encodes %v, upstream %v", name, l, u)
	}
}

// A config kubelet accepts with every field set; the documents after it
// are refused by both for an unknown field.
const fullConfig = `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages:
      - "*.dkr.ecr.*.amazonaws.com"
      - "registry.example.com:5000/team"
    defaultCacheDuration: "12h"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials, --verbose]
    env:
      - name: AWS_PROFILE
        value: node
      - name: EMPTY
        value: ""
  - name: sa-token-provider
    matchImages: ["*.azurecr.io"]
    defaultCacheDuration: "0s"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    tokenAttributes:
      serviceAccountTokenAudience: api://AzureADTokenExchange
      cacheType: ServiceAccount
      requireServiceAccount: true
      requiredServiceAccountAnnotationKeys: [azure.workload.identity/client-id]
      optionalServiceAccountAnnotationKeys: [azure.workload.identity/tenant-id]
`

func TestConfigDocumentsMatchUpstream(t *testing.T) {
	docs := map[string]string{
		"full":                                   fullConfig,
		"minimal":                                configOf(providerYAML("p", "x.io", "1h", "")),
		"null duration":                          strings.Replace(fullConfig, `"12h"`, "null", 1),
		"refused: unknown top-level field":       fullConfig + "metadata: {name: x}\n",
		"refused: unknown provider field":        strings.Replace(fullConfig, "    args:", "    argv: [x]\n    args:", 1),
		"refused: unknown env field":             strings.Replace(fullConfig, "value: node", "value: node\n        valueFrom: x", 1),
		"refused: unknown tokenAttributes field": strings.Replace(fullConfig, "cacheType: ServiceAccount", "cacheType: ServiceAccount\n      audience: x", 1),
		"refused: duration as a number":          strings.Replace(fullConfig, `"12h"`, "12", 1),
		"refused: bad duration":                  strings.Replace(fullConfig, `"12h"`, "twelve hours", 1),
	}
	for name, doc := range docs {
		sameThroughBoth(t, name, yamlToJSON(t, doc), new(CredentialProviderConfig), new(kubeletconfig.CredentialProviderConfig))
	}
	// The full config is accepted by LoadConfig's rules and read as written.
	cfg, err := parseConfig([]byte(fullConfig))
	if err != nil {
		t.Fatalf("parseConfig(fullConfig): %v", err)
	}
	p0, p1 := cfg.Providers[0], cfg.Providers[1]
	if p0.DefaultCacheDuration.Duration != 12*time.Hour || p0.Env[1].Name != "EMPTY" || p0.Args[1] != "--verbose" ||
		p1.TokenAttributes == nil || !*p1.TokenAttributes.RequireServiceAccount || p1.TokenAttributes.CacheType != ServiceAccountServiceAccountTokenCacheType {
		t.Errorf("parseConfig(fullConfig) = %+v, %+v", p0, *p1.TokenAttributes)
	}
	for name, doc := range docs {
		if strings.HasPrefix(name, "refused: unknown") {
			if _, err := parseConfig([]byte(doc)); err == nil || !strings.Contains(err.Error(), "unknown field") {
				t.Errorf("parseConfig(%s) = %v; want an unknown field refused", name, err)
			}
		}
	}
}

func TestExecDocumentsMatchUpstream(t *testing.T) {
	// The request the daemon writes is byte for byte upstream's.
	local, err := json.Marshal(CredentialProviderRequest{TypeMeta: TypeMeta{APIVersion: PluginAPIVersion, Kind: "CredentialProviderRequest"}, Image: "x.io/team/app"})
	if err != nil {
		t.Fatal(err)
	}
	upstream, err := json.Marshal(credentialproviderv1.CredentialProviderRequest{
		TypeMeta: metav1.TypeMeta{APIVersion: PluginAPIVersion, Kind: "CredentialProviderRequest"}, Image: "x.io/team/app"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(local, upstream) {
		t.Errorf("request: local %s, upstream %s", local, upstream)
	}
	requests := map[string]string{
		"full":                   `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"x.io/app","serviceAccountToken":"tok","serviceAccountAnnotations":{"a":"b"}}`,
		"refused: unknown field": `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"x.io/app","pod":"p"}`,
	}
	for name, doc := range requests {
		sameThroughBoth(t, name+" (request)", []byte(doc), new(CredentialProviderRequest), new(credentialproviderv1.CredentialProviderRequest))
	}
	const head = `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse",`
	responses := map[string]string{
		"image":                  head + `"cacheKeyType":"Image","cacheDuration":"1h30m","auth":{"x.io":{"username":"u","password":"p"},"*.x.io/team":{"username":"","password":""}}}`,
		"registry":               head + `"cacheKeyType":"Registry","cacheDuration":"0s","auth":{"x.io:5000":{"username":"u","password":"p"}}}`,
		"global no auth":         head + `"cacheKeyType":"Global"}`,
		"null auth":              head + `"cacheKeyType":"Image","auth":null,"cacheDuration":null}`,
		"refused: unknown field": head + `"cacheKeyType":"Image","token":"t"}`,
		"refused: unknown auth":  head + `"cacheKeyType":"Image","auth":{"x.io":{"username":"u","password":"p","auth":"dTpw"}}}`,
		"refused: bad duration":  head + `"cacheKeyType":"Image","cacheDuration":60}`,
	}
	for name, doc := range responses {
		sameThroughBoth(t, name+" (response)", []byte(doc), new(CredentialProviderResponse), new(credentialproviderv1.CredentialProviderResponse))
	}
}

// fill sets every field reachable from v to a non-zero value (one element
// per slice and map), so that an upstream document has every field.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("v")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int64: // metav1.Duration's time.Duration
		v.SetInt(int64(90 * time.Second))
	default:
		panic("fill: no value for " + v.Type().String())
	}
}

// Every field upstream has, set, goes through the mirror unchanged.
func TestEveryUpstreamFieldRoundTrips(t *testing.T) {
	for _, m := range mirrors {
		u := reflect.New(m.upstream)
		fill(u.Elem())
		js, err := json.Marshal(u.Interface())
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		l := reflect.New(m.local)
		if err := strict(js, l.Interface()); err != nil {
			t.Errorf("%s: the mirror refuses upstream's %s: %v", m.name, js, err)
			continue
		}
		if got, want := generic(t, l.Interface()), generic(t, u.Interface()); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the mirror encodes %v; upstream %v", m.name, got, want)
		}
	}
}

// Duration reads and writes what metav1.Duration does.
func TestDurationMatchesUpstream(t *testing.T) {
	for _, in := range []string{`"12h"`, `"1h30m0.5s"`, `"0s"`, `"0"`, `"-1m"`, `"300ms"`, `""`, `"12"`, `"1d"`, `12`, `null`, `true`, `{}`} {
		var l Duration
		var u metav1.Duration
		lerr, uerr := json.Unmarshal([]byte(in), &l), json.Unmarshal([]byte(in), &u)
		if (lerr == nil) != (uerr == nil) || l.Duration != u.Duration {
			t.Errorf("unmarshal %s: local %v, %v; upstream %v, %v", in, l.Duration, lerr, u.Duration, uerr)
		}
	}
	for _, d := range []time.Duration{0, time.Nanosecond, 90 * time.Second, -time.Minute, 12 * time.Hour} {
		l, lerr := json.Marshal(Duration{d})
		u, uerr := json.Marshal(metav1.Duration{Duration: d})
		if !bytes.Equal(l, u) || lerr != nil || uerr != nil {
			t.Errorf("marshal %v: local %s, %v; upstream %s, %v", d, l, lerr, u, uerr)
		}
	}
}
