#!/usr/bin/env python3
"""Checks Tandem's Kubernetes manifests (deploy/k8s) without a cluster.

kubectl cannot validate offline, so this checks what a broken manifest
would get wrong, on the manifests' own terms:

  - every document has apiVersion, kind and metadata.name, with the
    apiVersion its kind needs; the kustomization lists every manifest;
  - workloads: selectors match the pod template's labels, every container
    has a name and an image, Tandem containers run a Tandem binary with
    flags that binary defines (when the binaries are given), listen on the
    port they declare, have gRPC readiness and liveness probes on it,
    mount only volumes the pod defines, and find --model under a mount;
  - metrics: a pod whose Tandem container serves /metrics (--metrics_listen,
    or the router's --http_listen) has prometheus.io/scrape "true" and a
    prometheus.io/port that is that server's port and a containerPort;
  - Services select some workload, and their target ports are that
    workload's container ports; a StatefulSet's serviceName is a headless
    Service;
  - cross references: every --kvstore address names a store pod
    (<statefulset>-<i>.<service>:<port>, i < replicas), every --router
    address names a Service that reaches the router even before the router
    is ready (the router's readiness waits for workers).

Usage: check_k8s_manifests.py DIR [--binary NAME=PATH ...] [--self-test]
Exit status 0 when every check passes; otherwise each problem is printed.
"""

import argparse
import copy
import os
import re
import subprocess
import sys

import yaml

API_VERSIONS = {
    "Service": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "PersistentVolumeClaim": "v1",
    "ConfigMap": "v1",
}
WORKLOADS = ("Deployment", "StatefulSet")
TANDEM_BINARIES = ("router", "prefill_node", "decode_node", "kvstore")
ROUTER_READY_SERVICE = "tandem.v1.Router"


def load_documents(directory):
    """Returns (documents, kustomization) from every *.yaml in directory."""
    documents, kustomization = [], None
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(directory, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                if doc.get("kind") == "Kustomization":
                    kustomization = (name, doc)
                else:
                    documents.append((name, doc))
    return documents, kustomization


def binary_flags(path):
    """The flag names `path --helpfull` lists."""
    result = subprocess.run([path, "--helpfull"], capture_output=True,
                            text=True, check=False)
    text = result.stdout + result.stderr
    return set(re.findall(r"^\s+--([A-Za-z0-9_]+) \(", text, re.MULTILINE))


def parse_flags(args):
    """{name: value} of --name=value arguments."""
    flags = {}
    for arg in args or []:
        match = re.fullmatch(r"--([A-Za-z0-9_]+)(?:=(.*))?", str(arg))
        if match:
            flags[match.group(1)] = match.group(2)
    return flags


def port_of(address):
    """The port of host:port, or None."""
    match = re.fullmatch(r".*:(\d+)", address or "")
    return int(match.group(1)) if match else None


class Checker:
    def __init__(self, documents, kustomization, files, flags_by_binary):
        self.documents = documents
        self.kustomization = kustomization
        self.files = files
        self.flags_by_binary = flags_by_binary
        self.problems = []

    def problem(self, where, message):
        self.problems.append(f"{where}: {message}")

    def by_kind(self, kind):
        return [d for _, d in self.documents if d.get("kind") == kind]

    def workloads(self):
        return [d for _, d in self.documents if d.get("kind") in WORKLOADS]

    def run(self):
        for name, doc in self.documents:
            self.check_header(name, doc)
        self.check_kustomization()
        for workload in self.workloads():
            self.check_workload(workload)
        for service in self.by_kind("Service"):
            self.check_service(service)
        for workload in self.workloads():
            self.check_references(workload)
        return self.problems

    def check_header(self, name, doc):
        kind = doc.get("kind")
        where = f"{name} {kind or '?'}"
        for field in ("apiVersion", "kind", "metadata"):
            if field not in doc:
                self.problem(where, f"no {field}")
        if not (doc.get("metadata") or {}).get("name"):
            self.problem(where, "no metadata.name")
        expected = API_VERSIONS.get(kind)
        if expected is None:
            self.problem(where, f"unexpected kind {kind}")
        elif doc.get("apiVersion") != expected:
            self.problem(where, f"apiVersion {doc.get('apiVersion')}, "
                         f"expected {expected}")

    def check_kustomization(self):
        if self.kustomization is None:
            self.problem("kustomization.yaml", "missing")
            return
        name, doc = self.kustomization
        resources = doc.get("resources") or []
        for resource in resources:
            if resource not in self.files:
                self.problem(name, f"lists {resource}, which does not exist")
        for manifest in self.files:
            if manifest != name and manifest not in resources:
                self.problem(name, f"does not list {manifest}")

    def check_workload(self, workload):
        where = f"{workload['kind']} {workload['metadata'].get('name')}"
        spec = workload.get("spec") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if not selector:
            self.problem(where, "no selector.matchLabels")
        for key, value in selector.items():
            if labels.get(key) != value:
                self.problem(where, f"selector {key}={value} does not match "
                             "the pod template's labels")
        pod = template.get("spec") or {}
        volumes = {v.get("name") for v in pod.get("volumes") or []}
        containers = pod.get("containers") or []
        if not containers:
            self.problem(where, "no containers")
        for container in containers + (pod.get("initContainers") or []):
            self.check_container(where, container, volumes,
                                 init=container not in containers)
        if workload["kind"] == "StatefulSet":
            self.check_stateful_service(where, spec.get("serviceName"))
        if containers:
            self.check_scrape(where, template, containers[0])

    def check_scrape(self, where, template, container):
        """Prometheus annotations agree with the metrics server's port."""
        command = container.get("command") or []
        if not command or command[0] not in TANDEM_BINARIES:
            return
        flags = parse_flags(container.get("args"))
        listen = flags.get("http_listen" if command[0] == "router"
                           else "metrics_listen")
        annotations = (template.get("metadata") or {}).get("annotations") \
            or {}
        scrape = annotations.get("prometheus.io/scrape")
        if not listen:
            if scrape == "true":
                self.problem(where, "prometheus.io/scrape is set but the "
                             "container serves no /metrics")
            return
        if scrape != "true":
            self.problem(where, "serves /metrics but has no "
                         "prometheus.io/scrape: \"true\" annotation")
            return
        port = str(annotations.get("prometheus.io/port", ""))
        declared = {p.get("containerPort") for p in
                    container.get("ports") or []}
        if not port.isdigit() or int(port) != port_of(listen):
            self.problem(where, f"prometheus.io/port {port or '-'} is not "
                         f"the metrics port {port_of(listen)}")
        elif int(port) not in declared:
            self.problem(where, f"prometheus.io/port {port} is not a "
                         "containerPort")

    def check_container(self, where, container, volumes, init):
        where = f"{where} container {container.get('name', '?')}"
        if not container.get("name"):
            self.problem(where, "no name")
        if not container.get("image"):
            self.problem(where, "no image")
        mounts = container.get("volumeMounts") or []
        for mount in mounts:
            if mount.get("name") not in volumes:
                self.problem(where, f"mounts volume {mount.get('name')}, "
                             "which the pod does not define")
        env = {e.get("name") for e in container.get("env") or []}
        for arg in container.get("args") or []:
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(arg)):
                if var not in env:
                    self.problem(where, f"argument uses $({var}), which is "
                                 "not in env")
        command = container.get("command") or []
        binary = command[0] if command else None
        if init or binary not in TANDEM_BINARIES:
            if not init:
                self.problem(where, f"runs {binary}, not a Tandem binary")
            return
        flags = parse_flags(container.get("args"))
        known = self.flags_by_binary.get(binary)
        if known is not None:
            for flag in flags:
                if flag not in known:
                    self.problem(where, f"{binary} has no flag --{flag}")
        self.check_ports(where, container, flags)
        model = flags.get("model")
        if binary != "kvstore":
            if not model:
                self.problem(where, "no --model")
            elif not any(model.startswith(m.get("mountPath", "//") + "/")
                         for m in mounts):
                self.problem(where, f"--model={model} is under no volume "
                             "mount")

    def check_ports(self, where, container, flags):
        listen = port_of(flags.get("listen"))
        declared = {p.get("containerPort"): p.get("name")
                    for p in container.get("ports") or []}
        if listen is None:
            self.problem(where, "no --listen=HOST:PORT")
        elif listen not in declared:
            self.problem(where, f"listens on {listen}, which is not a "
                         "containerPort")
        for kind in ("readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if not probe:
                self.problem(where, f"no {kind}")
                continue
            grpc = probe.get("grpc")
            if not grpc:
                self.problem(where, f"{kind} is not a gRPC probe")
            elif grpc.get("port") != listen:
                self.problem(where, f"{kind} checks port {grpc.get('port')}, "
                             f"not the listen port {listen}")

    def check_stateful_service(self, where, service_name):
        services = {s["metadata"]["name"]: s for s in self.by_kind("Service")}
        service = services.get(service_name)
        if service is None:
            self.problem(where, f"serviceName {service_name} is no Service")
        elif (service.get("spec") or {}).get("clusterIP") != "None":
            self.problem(where, f"Service {service_name} is not headless")

    def selected(self, service):
        """Workloads whose pods the Service selects."""
        selector = (service.get("spec") or {}).get("selector") or {}
        out = []
        for workload in self.workloads():
            labels = (workload["spec"]["template"].get("metadata") or {}) \
                .get("labels") or {}
            if selector and all(labels.get(k) == v
                                for k, v in selector.items()):
                out.append(workload)
        return out

    def check_service(self, service):
        where = f"Service {service['metadata'].get('name')}"
        workloads = self.selected(service)
        if not workloads:
            self.problem(where, "selects no workload's pods")
            return
        for port in (service.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for workload in workloads:
                containers = workload["spec"]["template"]["spec"]["containers"]
                declared = [(p.get("containerPort"), p.get("name"))
                            for c in containers for p in c.get("ports") or []]
                if not any(target in pair for pair in declared):
                    self.problem(where, f"targetPort {target} is no container "
                                 f"port of {workload['metadata']['name']}")

    def main_flags(self, workload):
        containers = workload["spec"]["template"]["spec"]["containers"]
        return parse_flags(containers[0].get("args")), containers[0]

    def check_references(self, workload):
        where = f"{workload['kind']} {workload['metadata']['name']}"
        flags, _ = self.main_flags(workload)
        for address in filter(None, (flags.get("kvstore") or "").split(",")):
            self.check_store_address(where, address)
        if flags.get("router"):
            self.check_router_address(where, flags["router"])

    def check_store_address(self, where, address):
        match = re.fullmatch(r"([a-z0-9-]+)-(\d+)\.([a-z0-9-]+):(\d+)",
                             address)
        if not match:
            self.problem(where, f"--kvstore address {address} is not "
                         "<statefulset>-<i>.<service>:<port>")
            return
        name, index, service, port = match.groups()
        sets = {s["metadata"]["name"]: s for s in self.by_kind("StatefulSet")}
        store = sets.get(name)
        if store is None:
            self.problem(where, f"--kvstore names StatefulSet {name}, which "
                         "does not exist")
            return
        if int(index) >= store["spec"].get("replicas", 1):
            self.problem(where, f"--kvstore names {name}-{index}, beyond its "
                         f"{store['spec'].get('replicas', 1)} replicas")
        if store["spec"].get("serviceName") != service:
            self.problem(where, f"--kvstore uses service {service}, not "
                         f"{name}'s serviceName")
        store_flags, _ = self.main_flags(store)
        if port_of(store_flags.get("listen")) != int(port):
            self.problem(where, f"--kvstore port {port} is not the store's "
                         "listen port")

    def check_router_address(self, where, address):
        host, _, port = address.rpartition(":")
        services = {s["metadata"]["name"]: s for s in self.by_kind("Service")}
        service = services.get(host)
        if service is None:
            self.problem(where, f"--router names Service {host}, which does "
                         "not exist")
            return
        ports = [p.get("port") for p in service["spec"].get("ports") or []]
        if not port.isdigit() or int(port) not in ports:
            self.problem(where, f"--router port {port} is not a port of "
                         f"Service {host}")
        routers = [w for w in self.selected(service)
                   if self.main_flags(w)[1].get("command", [None])[0] ==
                   "router"]
        if not routers:
            self.problem(where, f"--router Service {host} selects no router")
            return
        _, container = self.main_flags(routers[0])
        readiness = (container.get("readinessProbe") or {}).get("grpc") or {}
        if (readiness.get("service") == ROUTER_READY_SERVICE and
                not service["spec"].get("publishNotReadyAddresses")):
            self.problem(where, f"heartbeats go to Service {host}, which "
                         "hides the router until it is ready, and it is "
                         "ready only once workers have reported")


def check(directory, flags_by_binary):
    documents, kustomization = load_documents(directory)
    files = sorted({name for name, _ in documents})
    return Checker(documents, kustomization, files, flags_by_binary).run()


def self_test(directory, flags_by_binary):
    """Breaks the manifests in known ways; each break must be caught."""
    documents, kustomization = load_documents(directory)
    files = sorted({name for name, _ in documents})

    def find(kind, name):
        for _, doc in documents:
            if doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(name)

    def main(doc):
        return doc["spec"]["template"]["spec"]["containers"][0]

    def set_arg(container, flag, value):
        container["args"] = [a for a in container["args"]
                             if not a.startswith(f"--{flag}=")]
        container["args"].append(f"--{flag}={value}")

    def router_no_publish(docs):
        service = find("Service", "tandem-router-membership")
        service["spec"].pop("publishNotReadyAddresses")

    breaks = {
        "a port that differs from --listen": lambda d: main(
            find("Deployment", "tandem-decode"))["ports"][0].update(
                containerPort=1234),
        "a probe on the wrong port": lambda d: main(
            find("Deployment", "tandem-prefill"))["readinessProbe"]["grpc"]
        .update(port=9),
        "a missing liveness probe": lambda d: main(
            find("StatefulSet", "tandem-kvstore")).pop("livenessProbe"),
        "a mount of an undefined volume": lambda d: main(
            find("Deployment", "tandem-router"))["volumeMounts"][0].update(
                name="nope"),
        "a selector that matches no labels": lambda d: find(
            "Deployment", "tandem-prefill")["spec"]["selector"]
        ["matchLabels"].update(extra="x"),
        "a Service selecting nothing": lambda d: find(
            "Service", "tandem-router")["spec"]["selector"].update(
                app="none"),
        "a store beyond the replicas": lambda d: find(
            "StatefulSet", "tandem-kvstore")["spec"].update(replicas=1),
        "a router Service that does not exist": lambda d: set_arg(
            main(find("Deployment", "tandem-decode")), "router",
            "missing:50051"),
        "heartbeats behind readiness": router_no_publish,
        "no image": lambda d: main(
            find("Deployment", "tandem-decode")).pop("image"),
        "an unknown apiVersion": lambda d: find(
            "Service", "tandem-kvstore").update(apiVersion="v2"),
        "a scrape port that is not the metrics port": lambda d: find(
            "Deployment", "tandem-decode")["spec"]["template"]["metadata"]
        ["annotations"].update({"prometheus.io/port": "9999"}),
        "a metrics port that is no containerPort": lambda d: main(
            find("StatefulSet", "tandem-kvstore"))["ports"].pop(),
        "a model outside every mount": lambda d: set_arg(
            main(find("Deployment", "tandem-prefill")), "model",
            "/elsewhere/fortune"),
    }
    if flags_by_binary:
        breaks["an unknown flag"] = lambda d: main(
            find("Deployment", "tandem-router"))["args"].append("--colour=1")
    failures = []
    pristine = copy.deepcopy(documents)
    for description, apply in breaks.items():
        documents[:] = copy.deepcopy(pristine)
        apply(documents)
        problems = Checker(documents, kustomization, files,
                           flags_by_binary).run()
        if not problems:
            failures.append(description)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--binary", action="append", default=[],
                        help="NAME=PATH of a Tandem binary whose flags the "
                        "manifests may use")
    parser.add_argument("--self-test", action="store_true",
                        help="check that known breakages are caught")
    args = parser.parse_args()
    flags_by_binary = {}
    for spec in args.binary:
        name, _, path = spec.partition("=")
        flags = binary_flags(path)
        if not flags:
            print(f"{path}: --helpfull listed no flags", file=sys.stderr)
            return 1
        flags_by_binary[name] = flags
    if args.self_test:
        missed = self_test(args.directory, flags_by_binary)
        for description in missed:
            print(f"not caught: {description}", file=sys.stderr)
        return 1 if missed else 0
    problems = check(args.directory, flags_by_binary)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{args.directory}: manifests OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
