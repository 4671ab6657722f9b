// One connection's standing with the access policy: its grant (from Hello, an Authorization
// header, or a later Authenticate) and the studies it was found to be allowed, cached until the
// grant changes.
import type { AccessControl, AccessRequest, Grant } from '../access.js';

export class SessionAccess {
  private grant: Grant | undefined;
  private readonly verdicts = new Map<string, boolean>();

  constructor(
    private readonly control: AccessControl,
    private readonly request: Omit<AccessRequest, 'claims'>,
    /** A token from the HTTP upgrade's Authorization header, used when Hello has none. */
    private readonly headerToken: string | undefined,
  ) {}

  /** Checks the token (Hello's, else the header's); throws AccessError with the reason. */
  async login(token: string | undefined): Promise<Grant> {
    const grant = await this.control.authenticate(token || this.headerToken);
    this.grant = grant;
    this.verdicts.clear();
    return grant;
  }

  get expired(): boolean {
    return !this.grant || this.control.expired(this.grant);
  }

  /** Every study allowed without asking. */
  get allowsAll(): boolean {
    return this.grant !== undefined && this.control.allowsAll(this.grant);
  }

  /** The verdict for a study already asked about (undefined: not asked yet). */
  verdict(studyInstanceUid: string): boolean | undefined {
    if (this.allowsAll) return true;
    return this.verdicts.get(studyInstanceUid);
  }

  /** Asks (once per study and grant) about each study; resolves when all have a verdict. */
  async decide(studyInstanceUids: Iterable<string>): Promise<void> {
    const grant = this.grant;
    if (!grant || this.allowsAll) return;
    await Promise.all([...new Set(studyInstanceUids)].filter((uid) => !this.verdicts.has(uid)).map(async (uid) => {
      const allowed = await this.control.allows(grant, this.request, uid);
      if (this.grant === grant) this.verdicts.set(uid, allowed);
    }));
  }
}
