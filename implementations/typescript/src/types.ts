/**
 * The body of a packet (spec/packet-1.1.md §3) as plain JavaScript values, after validation
 * against the shipped schemas. Numbers are JavaScript numbers: integers beyond 2^53 (a free-form
 * value, a seed, `n_parameters`) are the nearest double; the exact values are in the body bytes.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface Header {
  readonly format: "m2kt";
  readonly version: string;
  readonly created: string;
  readonly title?: string;
}

export interface Teacher {
  readonly name: string;
  readonly architecture: string;
  readonly latent_dim: number;
  readonly layer: string;
  readonly model_digest: string;
  readonly n_parameters?: number;
}

export interface Manifold {
  readonly directions: string;
  readonly variances: string;
  readonly spread: number;
  readonly support: number;
}

export interface Concept {
  readonly id: string;
  readonly label: string;
  readonly kind: string;
  readonly embedding: string;
  readonly manifold?: Manifold;
  readonly level?: number;
}

export interface Edge {
  readonly source: string;
  readonly target: string;
  readonly relation: string;
  readonly weight: number;
}

export interface TraceStep {
  readonly concept: string;
  readonly similarity?: number;
  readonly position?: number;
}

export interface Trace {
  readonly id: string;
  readonly input: readonly number[];
  readonly answer: number;
  readonly answer_label?: string;
  readonly steps: readonly TraceStep[];
  readonly states?: string;
}

export interface Anchor {
  readonly id: string;
  readonly input: readonly number[];
  readonly position: number;
  readonly state: string;
  readonly concept?: string;
}

export interface Provenance {
  readonly generator: { readonly name: string; readonly version: string };
  readonly task: { readonly name: string; readonly options: Readonly<Record<string, string | number | boolean>> };
  readonly parents: readonly string[];
  readonly task_inputs_used: number;
  readonly concept_probes_used: number;
  readonly parameters: Readonly<Record<string, JsonValue>>;
  readonly seed?: number;
}

export interface Safety {
  readonly require_signature: boolean;
  readonly min_signers: number;
  readonly protected_concepts?: readonly string[];
  readonly max_parameter_drift?: number;
  readonly max_output_divergence?: number;
  readonly max_capability_drop?: number;
}

export type Dtype = "f32" | "f16" | "bf16" | "i8";

export interface TensorDescriptor {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly length: number;
  readonly sha256: string;
  readonly scale?: number;
}

export interface Extension {
  readonly critical: boolean;
  readonly data: JsonValue;
}

/** Where a fact came from (spec §3.12). */
export type Derivation = "teacher-geometry" | "teacher-probe" | "teacher-trace" | "declared";
/** How a trace step's concept was decoded (spec §3.12). */
export type StepDecoding = "teacher-readout" | "nearest-concept" | "declared";

/** The data of the registered extension `derivation` (ext-derivation.schema.json). */
export interface DerivationData {
  readonly edges: readonly Derivation[];
  readonly trace_steps?: StepDecoding;
  readonly trace_selection?: {
    readonly method: "cover" | "random" | "declared";
    readonly unit: string;
    readonly candidates: number;
    readonly exercised: number;
    readonly covered: number;
  };
}

/** One entry of the registered extension `operators`: `operator` applied to `source` gives `target`. */
export interface OperatorEntry {
  readonly operator: string;
  readonly source: string;
  readonly target: string;
  readonly probability: number;
  readonly input: readonly number[];
  readonly derivation: Exclude<Derivation, "teacher-geometry">;
}

/** The data of the registered extension `operators` (ext-operators.schema.json). */
export interface OperatorsData {
  readonly entries: readonly OperatorEntry[];
}

export interface Body {
  readonly header: Header;
  readonly teacher: Teacher;
  readonly concepts: readonly Concept[];
  readonly graph: { readonly edges: readonly Edge[] };
  readonly traces: readonly Trace[];
  readonly anchors: readonly Anchor[];
  readonly provenance: Provenance;
  readonly safety: Safety;
  readonly tensors: readonly TensorDescriptor[];
  readonly extensions?: Readonly<Record<string, Extension>>;
}
