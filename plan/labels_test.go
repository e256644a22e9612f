package plan

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A container's labels are its config.json's annotations under hutch's
// prefix, and come back from them; none give no annotations at all.
func TestLabelAnnotations(t *testing.T) {
	m := parse(t, "apiVersion: hutch/v1alpha1\nkind: Container\nmetadata:\n  name: a\n  labels:\n    app: shop\n    example.com/tier: back\n"+
		"spec:\n  process:\n    args: [sh]\n", doc("b"))
	d, err := Build(m, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"hutch.label.app": "shop", "hutch.label.example.com/tier": "back"}
	if diff := cmp.Diff(want, d.Container("a").Spec.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"app": "shop", "example.com/tier": "back"}, Labels(d.Container("a").Spec.Annotations)); diff != "" {
		t.Errorf("labels read back (-want +got):\n%s", diff)
	}
	if a := d.Container("b").Spec.Annotations; a != nil {
		t.Errorf("a container without labels has annotations %v", a)
	}
	// Another annotation, such as one a runtime acts on, is no label.
	if got := Labels(map[string]string{"run.oci.keep_original_groups": "1", "hutch.label.x": ""}); !cmp.Equal(got, map[string]string{"x": ""}) {
		t.Errorf("labels of mixed annotations = %v", got)
	}
}
