import type { EventDefinition } from '#libs/events';

/**
 * Narrows a stored event to the payload type of its definition. Sound without a cast: the store
 * validated the payload against this very definition when it decoded the commit.
 */
export function isEvent<E extends { type: string; data: unknown }, T extends string, D>(
  def: EventDefinition<T, D>,
  e: E,
): e is E & { type: T; data: D } {
  return e.type === def.type;
}
