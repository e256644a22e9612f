package spec

import "testing"

func TestParseImageRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ImageRef
		err  bool
	}{
		{in: "oci-layout:images/web", want: ImageRef{"oci-layout", "images/web", ""}},
		{in: "oci-layout:images/web:v1.2", want: ImageRef{"oci-layout", "images/web", "v1.2"}},
		{in: "oci-layout:/srv/a:b/web", want: ImageRef{"oci-layout", "/srv/a:b/web", ""}},
		{in: "oci-layout:/srv/a:b/web:latest", want: ImageRef{"oci-layout", "/srv/a:b/web", "latest"}},
		{in: "docker-archive:web.tar", want: ImageRef{"docker-archive", "web.tar", ""}},
		{in: "docker-archive:/x/web:1.tar", want: ImageRef{"docker-archive", "/x/web:1.tar", ""}},
		{in: "docker://busybox", err: true},
		{in: "busybox", err: true},
		{in: "oci-layout:", err: true},
		{in: "oci-layout::latest", err: true},
		{in: "oci-layout:web:", err: true},
		{in: "oci-layout:web:-x", err: true},
		{in: "docker-archive:", err: true},
		{in: "oci-layout:a\x00b", err: true},
	} {
		got, err := ParseImageRef(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseImageRef(%q): error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("ParseImageRef(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("ParseImageRef(%q).String() = %q", tc.in, got.String())
		}
	}
}

// TestImageOf: a relative path is the manifest file's folder's, an
// absolute one stays.
func TestImageOf(t *testing.T) {
	for _, tc := range []struct{ file, image, want string }{
		{"/labs/web/lab.yaml", "oci-layout:images/web:v1", "oci-layout:/labs/web/images/web:v1"},
		{"/labs/web/lab.yaml", "oci-layout:../shared/img", "oci-layout:/labs/shared/img"},
		{"/labs/web/lab.yaml", "docker-archive:/srv/web.tar", "docker-archive:/srv/web.tar"},
		{"lab.yaml", "docker-archive:web.tar", "docker-archive:web.tar"},
		{"<stdin>", "docker-archive:./web.tar", "docker-archive:web.tar"},
	} {
		c := &Container{Source: Source{File: tc.file}}
		c.Spec.Rootfs.Image = tc.image
		r, ok, err := ImageOf(c)
		if err != nil || !ok || r.String() != tc.want {
			t.Errorf("ImageOf(%s in %s) = %v, %v, %v; want %s", tc.image, tc.file, r, ok, err, tc.want)
		}
	}
	if _, ok, _ := ImageOf(&Container{}); ok {
		t.Error("a container without image has one")
	}
}
