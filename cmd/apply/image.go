package main

import (
	imgdrv "hutch/drivers/image"
	"hutch/plan"
	"hutch/spec"
)

// readImages opens every image the manifest's containers name
// (rootfs.image), once per reference, and returns what plan.Build needs of
// each: its manifest digest, config and layers, and its user looked up in
// its own /etc/passwd and /etc/group when a container takes the image's
// user. Nothing is written and nothing is run. Every problem is a
// spec.Error at the container's rootfs.image line: a
// path that is missing, a file that is no image, a tag the layout lacks,
// another platform's image, no entrypoint or cmd to run, a user the image
// does not know.
func readImages(m *spec.Manifest) (map[string]*plan.Image, error) {
	type opened struct {
		img *imgdrv.Image
		err error
	}
	seen := map[string]*opened{}
	out := map[string]*plan.Image{}
	var errs spec.Errors
	for _, c := range m.Containers {
		r, ok, err := spec.ImageOf(c)
		if !ok || err != nil {
			continue // validation reports a reference that does not parse
		}
		ref := r.String()
		o := seen[ref]
		if o == nil {
			o = &opened{}
			o.img, o.err = imgdrv.Open(ref)
			seen[ref] = o
		}
		if o.err != nil {
			errs = append(errs, c.ErrorAt("spec.rootfs.image", o.err.Error()))
			continue
		}
		img := o.img
		pi := out[ref]
		if pi == nil {
			pi = &plan.Image{Ref: ref, Digest: img.Digest, Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd,
				Env: img.Config.Env, WorkingDir: img.Config.WorkingDir, User: img.Config.User}
			for _, l := range img.Layers {
				pi.Layers = append(pi.Layers, plan.ImageLayer{DiffID: l.DiffID, MediaType: l.MediaType, Size: l.Size})
			}
			out[ref] = pi
		}
		p := c.Spec.Process
		if len(p.Args) == 0 && len(pi.Entrypoint)+len(pi.Cmd) == 0 {
			errs = append(errs, c.ErrorAt("spec.rootfs.image", "image "+ref+" has neither entrypoint nor cmd (expected process.args)"))
		}
		if p.User == "" && pi.User != "" && !pi.UserResolved {
			u, err := img.LookupUser(pi.User)
			if err != nil {
				errs = append(errs, c.ErrorAt("spec.rootfs.image", err.Error()+" (or set process.user)"))
				continue
			}
			pi.UserResolved, pi.UID, pi.GID, pi.AdditionalGids = true, u.UID, u.GID, u.AdditionalGids
		}
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	return out, nil
}
