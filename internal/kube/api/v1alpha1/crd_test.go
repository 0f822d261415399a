package v1alpha1

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	kubemanifests "github.com/spindleml/spindle/deploy/kubernetes"
)

// TestCRDMatchesTypes checks that the committed CRD was generated from these
// types: every JSON field of InferenceFunction's spec and status is a property
// of the CRD's schema at the same path, and the schema has no property the
// types lack. After a change of the types, run scripts/kube-generate.sh.
func TestCRDMatchesTypes(t *testing.T) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(kubemanifests.CRD, &crd); err != nil {
		t.Fatal(err)
	}
	if crd.Spec.Group != GroupVersion.Group || len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != GroupVersion.Version {
		t.Fatalf("CRD %s %+v, want %s", crd.Spec.Group, crd.Spec.Versions, GroupVersion)
	}
	schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	for _, top := range []string{"spec", "status"} {
		f, _ := reflect.TypeFor[InferenceFunction]().FieldByName(strings.ToUpper(top[:1]) + top[1:])
		prop, ok := schema.Properties[top]
		if !ok {
			t.Fatalf("schema has no %s", top)
		}
		compare(t, top, f.Type, &prop)
	}
}

var opaque = map[reflect.Type]bool{
	reflect.TypeFor[metav1.Time]():      true,
	reflect.TypeFor[metav1.MicroTime](): true,
	reflect.TypeFor[metav1.Condition](): true,
}

func compare(t *testing.T, path string, typ reflect.Type, s *apiextensionsv1.JSONSchemaProps) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if opaque[typ] {
		return
	}
	switch typ.Kind() {
	case reflect.Slice:
		if s.Items == nil || s.Items.Schema == nil {
			t.Errorf("%s: a list in the types, no items in the schema", path)
			return
		}
		compare(t, path+"[]", typ.Elem(), s.Items.Schema)
	case reflect.Map:
		if s.AdditionalProperties == nil || s.AdditionalProperties.Schema == nil {
			t.Errorf("%s: a map in the types, no additionalProperties in the schema", path)
			return
		}
		compare(t, path+"{}", typ.Elem(), s.AdditionalProperties.Schema)
	case reflect.Struct:
		fields := map[string]reflect.Type{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
		}
		var names []string
		for n := range fields {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			p, ok := s.Properties[n]
			if !ok {
				t.Errorf("%s.%s: in the types, not in the CRD (run scripts/kube-generate.sh)", path, n)
				continue
			}
			compare(t, path+"."+n, fields[n], &p)
		}
		for n := range s.Properties {
			if _, ok := fields[n]; !ok {
				t.Errorf("%s.%s: in the CRD, not in the types (run scripts/kube-generate.sh)", path, n)
			}
		}
	}
}
