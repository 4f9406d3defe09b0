/**
 * The job ref dlt-runtime 0.26.1 reads for a job: a manifest job's own ref (its name), else the
 * name under `jobs.` (the client refuses any ref outside it: "Invalid job ref 'dashboard': must
 * start with 'jobs.'"), with characters a ref cannot hold replaced by `_`. JobsService.find finds the job
 * again from such a ref.
 */
export function compatJobRef(name: string): string {
  return name.startsWith('jobs.') ? name : `jobs.${name.replace(/[^A-Za-z0-9_.]/g, '_')}`;
}
