"""The tasks of `smallcode bench rag`: repository work on `requests` (the copy installed here).

Each task asks for a small function whose right answer reuses one of the package's own
helpers; the prompt describes the behaviour and never names the helper. ``tests`` run against
the answer with the real package importable; ``reference`` is an answer that reuses the
helper (the bench's own test checks that every reference passes).
"""

from __future__ import annotations

from dataclasses import dataclass

# The bench's modes (router.bench.rag), here so the CLI lists them without loading the bench
MODES = ("without", "with", "repair")


@dataclass(frozen=True)
class RagTask:
    name: str
    helper: str  # module.function the right answer reuses
    prompt: str
    tests: str
    reference: str


def _task(name: str, helper: str, prompt: str, tests: str) -> RagTask:
    module, function = helper.rsplit(".", 1)
    fn = prompt.split("`", 2)[1].split("(", 1)[0]
    args = prompt.split("`", 2)[1].split("(", 1)[1].rsplit(")", 1)[0]
    reference = (f"from {module} import {function}\n\n\ndef {fn}({args}):\n"
                 f"    return {function}({args})\n")
    return RagTask(name, helper, prompt, tests, reference)


TASKS: tuple[RagTask, ...] = (
    _task("credentials", "requests.utils.get_auth_from_url",
          "Write `credentials(url)`: the (username, password) pair embedded in a URL, "
          "percent-decoded, or ('', '') when the URL has none.",
          "assert credentials('http://us%40r:p%3Ass@host/x') == ('us@r', 'p:ss')\n"
          "assert credentials('http://host/x') == ('', '')\n"),
    _task("basic_header", "requests.auth._basic_auth_str",
          "Write `basic_header(username, password)`: the value of the HTTP Basic "
          "Authorization header for these credentials.",
          "assert basic_header('user', 'pass') == 'Basic dXNlcjpwYXNz'\n"
          "assert basic_header('a', 'b:c') == 'Basic YTpiOmM='\n"),
    _task("link_header", "requests.utils.parse_header_links",
          "Write `links(value)`: parse an HTTP Link header value into a list of dicts, one "
          "per link, with its 'url' and its parameters (such as 'rel').",
          "assert links('<http://a/2>; rel=\"next\", <http://a/9>; rel=\"last\"') == "
          "[{'url': 'http://a/2', 'rel': 'next'}, {'url': 'http://a/9', 'rel': 'last'}]\n"),
    _task("requote", "requests.utils.requote_uri",
          "Write `requote(uri)`: re-quote a URI so that it is fully and consistently "
          "percent-quoted (spaces quoted, unreserved characters unquoted, existing escapes "
          "kept).",
          "assert requote('http://example.com/a b/%7Efoo') == 'http://example.com/a%20b/~foo'\n"
          "assert requote('http://e.com/x%20y') == 'http://e.com/x%20y'\n"),
    _task("unreserved", "requests.utils.unquote_unreserved",
          "Write `unquote_safe(uri)`: decode only the percent-escapes of unreserved URI "
          "characters (letters, digits, '-', '.', '_', '~'), leaving reserved ones escaped.",
          "assert unquote_safe('http://e.com/%7Efoo%2F%41') == 'http://e.com/~foo%2FA'\n"),
    _task("defrag", "requests.utils.urldefragauth",
          "Write `strip_url(url)`: the URL without its fragment and without any "
          "user:password part.",
          "assert strip_url('http://u:p@host/path?q=1#frag') == 'http://host/path?q=1'\n"),
    _task("scheme", "requests.utils.prepend_scheme_if_needed",
          "Write `with_scheme(url, new_scheme)`: give the URL the scheme new_scheme when it "
          "has none, otherwise return it unchanged.",
          "assert with_scheme('example.com/x', 'https') == 'https://example.com/x'\n"
          "assert with_scheme('http://example.com/x', 'https') == 'http://example.com/x'\n"),
    _task("json_encoding", "requests.utils.guess_json_utf",
          "Write `json_encoding(data)`: detect which UTF encoding (utf-8, utf-16, utf-32, "
          "with their -le/-be forms) a JSON document given as bytes is written in.",
          "assert json_encoding('{}'.encode('utf-16')) == 'utf-16'\n"
          "assert json_encoding(b'{}') == 'utf-8'\n"
          "assert json_encoding('{}'.encode('utf-32-le')) == 'utf-32-le'\n"),
    _task("header_encoding", "requests.utils.get_encoding_from_headers",
          "Write `charset(headers)`: the text encoding that a dict of HTTP response headers "
          "declares in its content-type, with the HTTP defaults for text/* "
          "('ISO-8859-1') and JSON ('utf-8').",
          "assert charset({'content-type': 'text/html; charset=ISO-8859-2'}) == 'ISO-8859-2'\n"
          "assert charset({'content-type': 'text/plain'}) == 'ISO-8859-1'\n"
          "assert charset({'content-type': 'application/json'}) == 'utf-8'\n"),
    _task("in_network", "requests.utils.address_in_network",
          "Write `in_subnet(ip, net)`: whether the IPv4 address ip lies in the network net, "
          "given in CIDR notation like '192.168.1.0/24'.",
          "assert in_subnet('192.168.1.1', '192.168.1.0/24') is True\n"
          "assert in_subnet('192.168.2.1', '192.168.1.0/24') is False\n"),
    _task("cidr", "requests.utils.is_valid_cidr",
          "Write `valid_cidr(string_network)`: whether a string is a valid IPv4 network in "
          "CIDR notation (address and a mask length from 1 to 32).",
          "assert valid_cidr('192.168.1.0/24') is True\n"
          "assert valid_cidr('10.0.0.0/40') is False\n"
          "assert valid_cidr('10.0.0.0') is False\n"),
    _task("netmask", "requests.utils.dotted_netmask",
          "Write `netmask(mask)`: the dotted-quad form of an IPv4 netmask given as its "
          "number of bits.",
          "assert netmask(24) == '255.255.255.0'\nassert netmask(20) == '255.255.240.0'\n"),
    _task("dict_header", "requests.utils.parse_dict_header",
          "Write `header_params(value)`: parse a comma-separated HTTP header of key=value "
          "items (values may be quoted) into a dict; a key without a value maps to None.",
          "assert header_params('a=\"b c\", d=e, f') == {'a': 'b c', 'd': 'e', 'f': None}\n"),
    _task("list_header", "requests.utils.parse_list_header",
          "Write `header_items(value)`: split a comma-separated HTTP header into its items, "
          "where a quoted item may itself contain commas (quotes removed).",
          "assert header_items('token, \"quoted, value\"') == ['token', 'quoted, value']\n"),
    _task("slices", "requests.utils.iter_slices",
          "Write `chunks(string, slice_length)`: an iterator over successive pieces of the "
          "string, each slice_length long (the last may be shorter).",
          "assert list(chunks('abcdefg', 3)) == ['abc', 'def', 'g']\n"),
    _task("user_agent", "requests.utils.default_user_agent",
          "Write `user_agent()`: the User-Agent string this library sends by default, with "
          "its current version.",
          "import requests\nassert user_agent() == f'python-requests/{requests.__version__}'\n"),
    _task("select_proxy", "requests.utils.select_proxy",
          "Write `proxy_for(url, proxies)`: pick the proxy for a URL from a dict keyed by "
          "'scheme://host', by scheme or by 'all', the most specific key winning; None when "
          "none applies.",
          "p = {'http://internal.example': 'p1', 'http': 'p2', 'all': 'p3'}\n"
          "assert proxy_for('http://internal.example/x', p) == 'p1'\n"
          "assert proxy_for('http://other/x', p) == 'p2'\n"
          "assert proxy_for('ftp://other/x', p) == 'p3'\n"
          "assert proxy_for('ftp://other/x', {}) is None\n"),
    _task("body_length", "requests.utils.super_len",
          "Write `body_length(o)`: how many bytes are left to read in a request body, "
          "whether it is bytes, a string or an open file-like object (from its current "
          "position).",
          "import io\nb = io.BytesIO(b'abcdef')\nb.read(2)\n"
          "assert body_length(b) == 4\nassert body_length(b'xyz') == 3\n"),
    _task("cookie_dict", "requests.utils.dict_from_cookiejar",
          "Write `cookies_as_dict(cj)`: a plain dict of name -> value of the cookies in a "
          "cookie jar.",
          "from http.cookiejar import CookieJar, Cookie\n"
          "jar = CookieJar()\n"
          "jar.set_cookie(Cookie(0, 'a', '1', None, False, 'x.org', False, False, '/', False, "
          "False, None, False, None, None, {}))\n"
          "assert cookies_as_dict(jar) == {'a': '1'}\n"),
    _task("ipv4", "requests.utils.is_ipv4_address",
          "Write `is_ipv4(string_ip)`: whether a string is a valid IPv4 address.",
          "assert is_ipv4('1.2.3.4') is True\nassert is_ipv4('999.1.1.1') is False\n"
          "assert is_ipv4('host') is False\n"),
    _task("unquote_value", "requests.utils.unquote_header_value",
          "Write `header_value(value)`: undo the quoting of an HTTP header value the way "
          "browsers do (surrounding double quotes removed, backslash escapes resolved).",
          "assert header_value('\"a\\\\\\\\b\"') == 'a\\\\b'\n"
          "assert header_value('plain') == 'plain'\n"),
)
