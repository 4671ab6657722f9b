// xhr2 ships no types: an XMLHttpRequest class for Node, which dicomweb-client needs outside browsers.
declare module 'xhr2' {
  const XMLHttpRequest: unknown;
  export default XMLHttpRequest;
}
