const LABELS: Record<string, string> = {
  gaming: "Gaming",
  llm_inference: "LLM inference",
  ml_training: "ML training",
  general_compute: "Compute",
};

/** The workload class as a coloured chip; unknown classes still show, in the neutral colour. */
export function WorkloadChip({ workload }: { workload: string | null }) {
  const key = workload ?? "unknown";
  return <span className={`chip workload-${key}`}>{LABELS[key] ?? key}</span>;
}
