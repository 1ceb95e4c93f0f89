"""Realistic fake secrets of real formats, each in the kind of line an agent's transcript has.

Every token is drawn at run time from its format's alphabet with a seeded generator, so the
source holds nothing a secret scanner would flag and nothing here is, or was, a credential.
``FORMATS`` maps a format's name to ``(secret, line)``: the line is a command, a config line
or a tool's output that holds the secret; the secret must never be seen after redaction.
"""

from __future__ import annotations

import random
import string

_RANDOM = random.Random(14)  # noqa: S311 -- fake tokens, not cryptography

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
HEX = "0123456789abcdef"
BASE64 = ALNUM + "+/"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def draw(alphabet: str, size: int) -> str:
    """``size`` characters of ``alphabet`` (at least one digit, when it has digits)."""
    while True:
        token = "".join(_RANDOM.choice(alphabet) for _ in range(size))
        if size < 8 or not any(c.isdigit() for c in alphabet) or any(c.isdigit() for c in token):
            return token


def _password() -> str:
    return draw(ALNUM, 10) + "!" + draw(ALNUM, 5)


def _formats() -> dict[str, tuple[str, str]]:  # noqa: PLR0915 -- one table
    f: dict[str, tuple[str, str]] = {}

    def add(name: str, secret: str, line: str) -> None:
        assert secret in line, name
        f[name] = (secret, line)

    t = "sk-" + draw(ALNUM, 48)
    add("openai legacy key", t, f"curl https://api.openai.com/v1/models -H 'Authorization: {t}'")
    t = "sk-proj-" + draw(URLSAFE, 58) + "T3Blbk" + "FJ" + draw(URLSAFE, 58)
    add("openai project key", t, f"export OPENAI_KEY_BACKUP={t}")
    t = "sk-ant-" + "api03-" + draw(URLSAFE, 93) + "AA"
    add("anthropic key", t, f"anthropic.AuthenticationError: invalid x-api-key {t}")
    t = "sk-or-" + "v1-" + draw(HEX, 64)
    add("openrouter key", t, f"llm -m openrouter/auto --key {t} 'hello'")
    t = "gsk_" + draw(ALNUM, 52)
    add("groq key", t, f"groq.AuthenticationError: Invalid API Key: {t}")
    t = "xai-" + draw(ALNUM, 80)
    add("xai key", t, f"client = OpenAI(base_url='https://api.x.ai/v1', key='{t}')")
    t = "pplx-" + draw(ALNUM, 48)
    add("perplexity key", t, f"PERPLEXITY={t} python search.py")
    t = "r8_" + draw(ALNUM, 37)
    add("replicate token", t, f"replicate.exceptions.ReplicateError: token {t} is invalid")
    t = "hf_" + draw(ALNUM, 34)
    add("hugging face token", t, f"git push https://user:{t}@huggingface.co/spaces/u/demo")
    t = "ghp_" + draw(ALNUM, 36)
    add("github classic token", t, f"gh auth login --with-token <<< {t}")
    t = "github_pat_" + draw(ALNUM, 22) + "_" + draw(ALNUM, 59)
    add("github fine-grained token", t, f"remote: Invalid credentials {t}")
    t = "glpat-" + draw(URLSAFE, 20)
    add("gitlab token", t, f"glab auth login --hostname gitlab.com -t {t}")
    t = "npm_" + draw(ALNUM, 36)
    add("npm token", t, f"echo //registry.npmjs.org/:_authToken={t} >> ~/.npmrc")
    t = "pypi-" + "AgEIcHlwaS5vcmc" + draw(URLSAFE, 140)
    add("pypi token", t, f"twine upload -u __token__ -p {t} dist/*")
    t = "xoxb-" + draw("0123456789", 12) + "-" + draw("0123456789", 13) + "-" + draw(ALNUM, 24)
    add("slack bot token", t, f"SlackApiError: invalid_auth for {t}")
    t = "T0" + draw("ABCDEFGHJK0123456789", 8) + "/B0" + draw("ABCDEFGH0123456789", 8) + "/"
    t += draw(ALNUM, 24)
    add("slack webhook", t, f"curl -X POST https://hooks.slack.com/services/{t} -d @msg.json")
    t = draw("0123456789", 18) + "/" + draw(URLSAFE, 68)
    add("discord webhook", t, f"requests.post('https://discord.com/api/webhooks/{t}', json=m)")
    t = "AA" + draw(URLSAFE, 33)
    add("telegram bot token", t, f"curl https://api.telegram.org/bot7123456789:{t}/getMe")
    t = "SK" + draw(HEX, 32)
    add("twilio api key", t, f"twilio api:core:messages:create --api-key {t} --to +15550100")
    t = "SG." + draw(URLSAFE, 22) + "." + draw(URLSAFE, 43)
    add("sendgrid key", t, f"python send.py  # sendgrid.SendGridAPIClient('{t}')")
    t = "key-" + draw(HEX, 32)
    add("mailgun key", t, f"curl -s --user 'api:{t}' https://api.mailgun.net/v3/domains")
    t = draw(HEX, 32) + "-us21"
    add("mailchimp key", t, f"mailchimp.set_config({{'api_key': '{t}', 'server': 'us21'}})")
    t = "sk_" + "live_" + draw(ALNUM, 99)
    add("stripe live key", t, f"stripe.error.AuthenticationError: Invalid API Key provided: {t}")
    t = "whsec_" + draw(ALNUM, 32)
    add("stripe webhook secret", t, f"stripe listen --forward-to localhost:4242 # {t}")
    t = "EAAA" + draw(URLSAFE, 60)
    add("square access token", t, f"SQUARE_ENV=prod node pay.js --token {t}")
    t = "sq0csp-" + draw(URLSAFE, 43)
    add("square oauth secret", t, f"square.oauth.obtain_token(client_secret='{t}')")
    t = "shpat_" + draw(HEX, 32)
    add("shopify token", t, f"curl -H 'X-Shopify-Access-Token: {t}' https://s.myshopify.com")
    t = "AKIA" + draw(string.ascii_uppercase + "234567", 16)
    add("aws access key id", t, f"aws s3 ls --profile ci  # id {t} was denied")
    t = draw(ALNUM, 12) + "/" + draw(ALNUM, 13) + "+" + draw(ALNUM, 13)
    add("aws secret key, bare", t, f"Access key ID,Secret access key\nAKIA_ROTATED,{t}\n")
    t = draw(ALNUM, 20) + "/" + draw(BASE64, 19)
    add("aws secret key, configure prompt", t, f"AWS Secret Access Key [None]: {t}")
    t = "AIza" + draw(URLSAFE, 35)
    add("google api key", t, f"https://maps.googleapis.com/maps/api/geocode/json?key={t}")
    t = "GOCSPX-" + draw(URLSAFE, 28)
    add("google oauth client secret", t, f'{{"installed": {{"client_secret": "{t}"}}}}')
    t = "ya29." + draw(URLSAFE, 120)
    add("google oauth access token", t, f"gcloud auth print-access-token -> {t}")
    t = draw(BASE64, 86) + "=="
    add(
        "azure storage account key",
        t,
        f"az storage blob list --connection-string 'DefaultEndpointsProtocol=https;"
        f"AccountName=acct;AccountKey={t};EndpointSuffix=core.windows.net'",
    )
    t = draw(ALNUM, 3) + "8Q~" + draw(URLSAFE + "~.", 34)
    add("azure client secret", t, f"az login --service-principal -u app-id -p {t} --tenant t")
    t = "dapi" + draw(HEX, 32)
    add("databricks token", t, f"databricks configure --host https://x.cloud.databricks.com {t}")
    t = "dop_v1_" + draw(HEX, 64)
    add("digitalocean token", t, f"doctl auth init -t {t}")
    t = "hvs." + draw(URLSAFE, 90)
    add("vault token", t, f"vault login {t}")
    t = "AGE-SECRET-KEY-1" + draw(BECH32, 58)
    add("age secret key", t, f"cat key.txt\n# created: 2024-01-01\n{t}\n")
    t = "HRKU-AA" + draw(URLSAFE, 58)
    add("heroku key", t, f"heroku auth:token  # {t}")
    t = "lin_api_" + draw(ALNUM, 40)
    add("linear key", t, f"LINEAR_API={t} node sync.js")
    t = "sntryu_" + draw(HEX, 64)
    add("sentry token", t, f"sentry-cli --auth-token {t} releases list")
    t = "ntn_" + draw("0123456789", 11) + draw(ALNUM, 35)
    add("notion token", t, f"notion_client.errors.APIResponseError: token {t} unauthorized")
    t = "eyJ" + draw(URLSAFE, 30) + ".eyJ" + draw(URLSAFE, 60) + "." + draw(URLSAFE, 43)
    add("jwt", t, f"curl -H 'Authorization: Bearer {t}' https://api.example.com/me")
    body = draw(BASE64, 64)
    pem = "RSA PRIVATE KEY-----"
    t = f"-----BEGIN {pem}\n{body}\n{draw(BASE64, 64)}\n-----END {pem}"
    add("pem private key", body, f"cat ~/.ssh/id_rsa\n{t}\n")
    t = _password()
    add("postgres url password", t, f"psql postgresql://app:{t}@db.internal:5432/prod -c 'x'")
    t = _password()
    add(
        "password with @ in url",
        t + "@x",
        f"git clone https://deploy:{t}@x@git.example.com/o/r.git",
    )
    t = _password()
    add("mysql -p", t, f"mysql -h db -u root -p{t} shop -e 'show tables'")
    t = _password()
    add("docker login -p", t, f"docker login -u ci -p {t} registry.example.com")
    t = _password()
    add("sshpass -p", t, f"sshpass -p '{t}' ssh deploy@10.0.0.5 uptime")
    t = _password()
    add("redis-cli -a", t, f"redis-cli -h cache -a {t} ping")
    t = draw(ALNUM, 32)
    add("session cookie header", t, f"curl -H 'Cookie: sessionid={t}; csrftoken=abc' https://x")
    t = draw(URLSAFE, 40)
    add("session cookie flag", t, f"curl -b 'session={t}' https://app.example.com/api/me")
    t = _password()
    add("env DB_PASS", t, f"DB_HOST=db DB_USER=app DB_PASS={t} ./manage.py migrate")
    t = _password()
    add("env MYSQL_PWD", t, f"MYSQL_PWD={t} mysqldump shop > shop.sql")
    t = _password()
    add("yaml password", t, f"database:\n  user: app\n  password: {t}\n")
    t = _password()
    add("curl -u", t, f"curl -u admin:{t} https://ci.example.com/api/json")
    t = "lsv2_pt_" + draw(HEX, 32) + "_" + draw(HEX, 10)
    add("langsmith key", t, f"LANGCHAIN_TRACING_V2=true LANGSMITH_KEY={t} python app.py")
    t = "pcsk_" + draw(ALNUM, 5) + "_" + draw(ALNUM, 60)
    add("pinecone key", t, f"pinecone.init(key='{t}')")
    t = "rubygems_" + draw(HEX, 48)
    add("rubygems key", t, f"gem push pkg-1.0.gem --key {t}")
    t = "rdme_" + draw(HEX, 70)
    add("readme key", t, f"rdme openapi spec.json --key {t}")
    t = "ATATT3" + draw(URLSAFE, 183) + "=" + draw("0123456789ABCDEF", 8)
    add("atlassian token", t, f"jira.exceptions.JIRAError: HTTP 401 for {t}")
    t = "PMAK-" + draw(HEX, 24) + "-" + draw(HEX, 34)
    add("postman key", t, f"newman run c.json --postman-api {t}")
    t = "AKCp" + draw(ALNUM, 69)
    add("artifactory key", t, f"jf rt ping --url https://jf.example.com --apikey {t}")
    t = "dt0c01." + draw(ALNUM, 24).upper() + "." + draw(ALNUM, 64).upper()
    add("dynatrace token", t, f"DT_API={t} ./report.sh")
    t = "sha256~" + draw(URLSAFE, 43)
    add("openshift token", t, f"oc login --token={t} --server=https://api.ocp:6443")
    t = "pnu_" + draw(ALNUM, 36)
    add("prefect key", t, f"prefect cloud login -k {t}")
    t = "xkeysib-" + draw(HEX, 64) + "-" + draw(ALNUM, 16)
    add("brevo key", t, f"brevo.ApiException: (401) key {t} not found")
    t = "sbp_" + draw(HEX, 40)
    add("supabase token", t, f"supabase login --token {t}")
    t = "glsa_" + draw(ALNUM, 32) + "_" + draw(HEX, 8)
    add("grafana token", t, f"curl -H 'X-Grafana: {t}' https://g.example.com/api/search")
    t = "NRAK-" + draw(string.ascii_uppercase + string.digits, 27)
    add("new relic key", t, f"newrelic profile add --apiKey {t} --region US")
    t = "dp.pt." + draw(ALNUM, 43)
    add("doppler token", t, f"doppler configure set token {t}")
    t = "sl." + draw(URLSAFE, 140)
    add("dropbox token", t, f"dbx = dropbox.Dropbox('{t}')")
    t = "AAAA" + draw(URLSAFE, 7) + ":APA91b" + draw(URLSAFE, 134)
    add("firebase server key", t, f"curl -H 'key={t}' https://fcm.googleapis.com/fcm/send")
    t = "LTAI" + draw(ALNUM, 20)
    add("alibaba key id", t, f"aliyun configure set --access-key-id {t} --region cn-hangzhou")
    t = "pul-" + draw(HEX, 40)
    add("pulumi token", t, f"pulumi login --cloud-url https://api.pulumi.com  # {t}")
    t = "pscale_pw_" + draw(URLSAFE, 43)
    add("planetscale password", t, f"mysql://u:{t}@aws.connect.psdb.cloud/db?sslaccept=strict")
    t = draw(BASE64, 40) + "="
    add("docker config auth", t, f'{{"auths": {{"ghcr.io": {{"auth": "{t}"}}}}}}')
    t = draw(ALNUM, 30) + "%3D"
    add("azure sas signature", t, f"azcopy cp f https://a.blob.core.windows.net/c?sp=r&sig={t}")
    t = draw(HEX, 32).upper()
    add("java session id", t, f"GET https://shop.example.com/cart;jsessionid={t} 500")
    return f


FORMATS = _formats()
"""Format name → (the secret, a transcript line that holds it)."""
