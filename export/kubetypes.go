package export

// The Kubernetes objects hutch writes, as plain structs with the field
// names of the core/v1 and networking/v1 APIs: only the fields the
// mapping fills (k8s.io/api would bring tens of megabytes of generated code
// for them).

type kubeObject struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   kubeMeta `yaml:"metadata"`
	Spec       any      `yaml:"spec"`
}

type kubeMeta struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

type podSpec struct {
	Hostname                      string          `yaml:"hostname,omitempty"`
	RestartPolicy                 string          `yaml:"restartPolicy"`
	TerminationGracePeriodSeconds *int64          `yaml:"terminationGracePeriodSeconds,omitempty"`
	SecurityContext               *podSecurity    `yaml:"securityContext,omitempty"`
	Containers                    []kubeContainer `yaml:"containers"`
	Volumes                       []volume        `yaml:"volumes,omitempty"`
}

type podSecurity struct {
	SupplementalGroups []int64  `yaml:"supplementalGroups,omitempty"`
	Sysctls            []sysctl `yaml:"sysctls,omitempty"`
}

type sysctl struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

type kubeContainer struct {
	Name            string             `yaml:"name"`
	Image           string             `yaml:"image"`
	ImagePullPolicy string             `yaml:"imagePullPolicy"`
	Command         []string           `yaml:"command,omitempty"`
	Args            []string           `yaml:"args,omitempty"`
	WorkingDir      string             `yaml:"workingDir,omitempty"`
	Env             []envVar           `yaml:"env,omitempty"`
	Ports           []containerPort    `yaml:"ports,omitempty"`
	Resources       *resources         `yaml:"resources,omitempty"`
	SecurityContext *containerSecurity `yaml:"securityContext,omitempty"`
	StartupProbe    *probe             `yaml:"startupProbe,omitempty"`
	ReadinessProbe  *probe             `yaml:"readinessProbe,omitempty"`
	LivenessProbe   *probe             `yaml:"livenessProbe,omitempty"`
	VolumeMounts    []volumeMount      `yaml:"volumeMounts,omitempty"`
}

type envVar struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

type containerPort struct {
	Name          string `yaml:"name,omitempty"`
	ContainerPort int    `yaml:"containerPort"`
	HostPort      int    `yaml:"hostPort,omitempty"`
	HostIP        string `yaml:"hostIP,omitempty"`
	Protocol      string `yaml:"protocol"`
}

type resources struct {
	Limits map[string]string `yaml:"limits,omitempty"`
}

type containerSecurity struct {
	RunAsUser                *int64          `yaml:"runAsUser,omitempty"`
	RunAsGroup               *int64          `yaml:"runAsGroup,omitempty"`
	Privileged               bool            `yaml:"privileged"`
	AllowPrivilegeEscalation *bool           `yaml:"allowPrivilegeEscalation,omitempty"`
	ReadOnlyRootFilesystem   bool            `yaml:"readOnlyRootFilesystem"`
	Capabilities             *capabilities   `yaml:"capabilities,omitempty"`
	SeccompProfile           *seccompProfile `yaml:"seccompProfile,omitempty"`
}

type capabilities struct {
	Drop []string `yaml:"drop"`
	Add  []string `yaml:"add,omitempty"`
}

type seccompProfile struct {
	Type             string `yaml:"type"`
	LocalhostProfile string `yaml:"localhostProfile,omitempty"`
}

type probe struct {
	HTTPGet             *httpGet   `yaml:"httpGet,omitempty"`
	TCPSocket           *tcpSocket `yaml:"tcpSocket,omitempty"`
	Exec                *execProbe `yaml:"exec,omitempty"`
	InitialDelaySeconds int64      `yaml:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int64      `yaml:"periodSeconds"`
	TimeoutSeconds      int64      `yaml:"timeoutSeconds"`
	SuccessThreshold    int        `yaml:"successThreshold"`
	FailureThreshold    int        `yaml:"failureThreshold"`
}

type httpGet struct {
	Path string `yaml:"path"`
	Port int    `yaml:"port"`
}

type tcpSocket struct {
	Port int `yaml:"port"`
}

type execProbe struct {
	Command []string `yaml:"command"`
}

type volume struct {
	Name     string    `yaml:"name"`
	HostPath *hostPath `yaml:"hostPath,omitempty"`
	EmptyDir *emptyDir `yaml:"emptyDir,omitempty"`
}

type hostPath struct {
	Path string `yaml:"path"`
}

type emptyDir struct {
	Medium    string `yaml:"medium"`
	SizeLimit string `yaml:"sizeLimit,omitempty"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly,omitempty"`
}

type serviceSpec struct {
	Type     string            `yaml:"type"`
	Selector map[string]string `yaml:"selector"`
	Ports    []servicePort     `yaml:"ports"`
}

type servicePort struct {
	Name       string `yaml:"name"`
	Protocol   string `yaml:"protocol"`
	Port       int    `yaml:"port"`
	TargetPort int    `yaml:"targetPort"`
}

type networkPolicySpec struct {
	PodSelector labelSelector `yaml:"podSelector"`
	PolicyTypes []string      `yaml:"policyTypes"`
	Ingress     []ingressRule `yaml:"ingress"`
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels,omitempty"`
	MatchExpressions []selectorExpr    `yaml:"matchExpressions,omitempty"`
}

type selectorExpr struct {
	Key      string `yaml:"key"`
	Operator string `yaml:"operator"`
}

type ingressRule struct {
	From  []peer       `yaml:"from,omitempty"`
	Ports []policyPort `yaml:"ports,omitempty"`
}

type peer struct {
	PodSelector *labelSelector `yaml:"podSelector,omitempty"`
}

type policyPort struct {
	Protocol string `yaml:"protocol"`
	Port     int    `yaml:"port"`
}
