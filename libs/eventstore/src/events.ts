export {
  defineEvent,
  EventRegistry,
  type DomainEvent,
  type EventDefinition,
  type EventOf,
  type Upcaster,
} from '#libs/events';
