# The pages of the service, in English: the reference every other catalogue follows.

## Shared by several pages

common-form-expired = The form expired. Please try again.
common-form-expired-go-back = The form expired. Please go back and try again.
common-invalid-request = Invalid request
common-something-went-wrong = Something went wrong
common-please-try-again = Please try again.
common-not-allowed = Not allowed
common-not-an-email = That is not an email address. Type one like alice@example.com.
common-wrong-code = That is not the code that was sent. Check the message and try again.
common-code-expired = This code has expired
common-passwords-differ = The new passwords do not match.
common-password-too-easy = This password is too easy to guess. Try a longer one, or a few unrelated words.
common-username-taken = This username is taken.
common-accept-terms = Accept the terms of service to create an account.
common-account-not-created = The account is not created
common-request-cannot-be-completed = This request cannot be completed
common-choose-allow-or-deny = Choose Allow or Deny.
common-request-refused = The application's request was refused.
common-return-to = Return to { $host }
common-signed-in-end = .

## Throttling: { $seconds } is how long to wait

throttle-wait = { $seconds ->
    [one] Try again in one second.
   *[other] Try again in { $seconds } seconds.
}
throttle-attempts = Too many attempts. { throttle-wait }
throttle-codes-sent = Too many codes were sent. { throttle-wait }
throttle-codes-tried = Too many codes were tried. { throttle-wait }
throttle-links = Too many links were asked for. { throttle-wait }
throttle-from-address-attempts = Too many attempts came from your address. { throttle-wait }
throttle-from-address-sign-in-attempts = Too many sign-in attempts came from your address. { throttle-wait }
throttle-from-address-sign-ins = Too many sign-in requests came from your address. { throttle-wait }
throttle-from-address-codes = Too many codes came from your address. { throttle-wait }

## What the policy refuses

violation-username-all-numeric = A username needs at least one character other than a digit.
violation-username = This username is not allowed here.
violation-email-domain = Addresses of this domain are not allowed here.
violation-email = This email address is not allowed here.
violation-password-too-short = { $min ->
    [one] A password needs at least one character.
   *[other] A password needs at least { $min } characters.
}
violation-password-lowercase = A password needs a lowercase letter.
violation-password-uppercase = A password needs an uppercase letter.
violation-password-digit = A password needs a digit.
violation-requester = This is not allowed from where you are.

## Registration tokens

token-unknown = This registration token is not valid.
token-revoked = This registration token has been revoked.
token-expired = This registration token has expired.
token-used-up = This registration token has been used as many times as it allows.

## What a client asks for, in words

scope-openid = Know who you are
scope-email = See your email address
scope-matrix-api = Use your Matrix account: read and send messages as you
scope-matrix-guest = Use your Matrix account as a guest
scope-synapse-admin = Administer the homeserver
scope-mas-admin = Administer this authentication service
scope-mas-graphql = Manage your account
scope-device = Sign in this device: { $device }
scope-unknown = Something this service does not describe: { $scope }

## Failures any page can meet

error-unavailable = Temporarily unavailable
error-unavailable-detail = The service cannot reach its database. Please try again in a moment.
error-homeserver-down = The homeserver is not answering
error-homeserver-down-detail = Your change could not be made on the homeserver. Please try again in a moment.
error-homeserver-refused = The homeserver refused the change
error-homeserver-refused-detail = Your change could not be made on the homeserver. Please try again later.

## The page that hands an answer to an application

page-continue = Continue
page-error-for-developers = For the application's developers:
page-error-access-denied = The application was not given access.
page-error-interaction-required = The application asked to go on without you, but this needs you to sign in or to approve it first.
page-form-too-large = The form sent is too large.
page-form-not-a-form = What was sent is not a form.
page-form-too-slow = The form took too long to arrive. Please try again.
page-form-unreadable = The form could not be read: a field holds a line break or another character that cannot be used.

## The account page (account.html)

account-title = Your account
account-profile = Profile
account-username = Username
account-matrix-id = Matrix ID
account-display-name = Display name
account-display-name-none = none
account-new-display-name = New display name
account-save = Save
account-password = Password
account-current-password = Current password
account-new-password = New password
account-new-password-again = New password, again
account-sign-out-others-too = Sign out every other session
account-change-password = Change password
account-security = Sessions and security
# { $when } is a date and time, like 2025-01-31 14:05 UTC
account-signed-in-at = This browser signed in on { $when }.

## Notices after a change, on the account and sessions pages

account-notice-display-name = Your display name is changed.
account-notice-password = Your password is changed.
account-notice-password-everywhere = Your password is changed, and every other session is signed out.
sessions-notice-ended = The session is signed out.
sessions-notice-renamed = The device is renamed.
sessions-notice-everywhere = Every other session is signed out.
emails-notice-added = The email address is added.
emails-notice-removed = The email address is removed.

## Sensitive actions' confirmation pages (account_confirm.html)
## The "-before" and "-after" messages surround the Matrix ID, shown in bold.

account-deactivate-title = Deactivate your account
account-deactivate-intro-before = Deactivating
account-deactivate-intro-after = signs you out everywhere and nobody can sign in to it again. It cannot be undone by you.
account-erase = Also erase my messages and profile on the homeserver
account-deactivate-button = Deactivate my account
account-sign-out-others-title = Sign out everywhere else
account-sign-out-others-intro-before = Every other browser and every device signed in as
account-sign-out-others-intro-after = is signed out, and the homeserver forgets those devices. This browser stays signed in.
account-reset-title = Reset your identity
account-reset-heading = Reset your cryptographic identity
account-reset-intro = If you lost access to every device and your recovery key, your Matrix client can replace your identity keys.
account-reset-allow-before = Allowing it here lets
account-reset-allow-after = do so without further checks for the next 10 minutes.
account-reset-unreadable = Messages only your old identity could read stay unreadable.
account-reset-button = Allow the reset
account-confirm-password = Your password, to confirm it is you
account-wrong-password = Wrong password.

## What the account's changes answer

account-unusable = This account cannot be used
account-unusable-detail = It is locked or deactivated.
account-off-display-name = Changing the display name is turned off on this server. Ask its administrators.
account-off-password = Changing the password is turned off on this server. Ask its administrators.
account-off-deactivate = Deactivating an account is turned off on this server. Ask its administrators.
account-display-name-invalid = This display name cannot be used
account-display-name-invalid-detail = A display name is at most { $max } characters, without line breaks or control characters.
account-password-not-changed = Your password is not changed
account-new-password-too-easy = The new password is too easy to guess. Try a longer one, or a few unrelated words.
account-current-password-wrong = The current password is wrong.
account-reset-allowed = Identity reset allowed
account-reset-allowed-detail = Go back to your Matrix client and reset your identity there within the next 10 minutes.
account-deactivated = Your account is deactivated
account-deactivated-detail = You are signed out everywhere, and nobody can sign in to it any more.

## Email addresses: the account page's section, the code page (email_code.html), refusals

emails-heading = Email addresses
emails-remove = Remove
emails-none = No email address is on this account.
emails-add-label = Add an address
emails-send-code = Send a code
emails-check-title = Check your email
# "-before" and "-after" surround the address, shown in bold
emails-on-its-way-before = A code is on its way to
emails-on-its-way-after = .
emails-may-take-a-minute = It may take a minute to arrive.
emails-code-label = The 6-digit code
emails-add-button = Add the address
emails-off = Changing email addresses is turned off on this server. Ask its administrators.
emails-not-added = The address is not added
emails-already-yours = This address is already on your account.
emails-taken = This address is already used by an account here.
emails-code-expired-detail = Codes work for an hour, five tries at most, in the browser that asked. Add the address again to get a new one.
emails-add-again = Please add the address again.
emails-no-such-address = No such address
emails-no-such-address-detail = This address is not on your account.

## Sessions and devices (sessions.html, session.html)

sessions-title = Sessions
sessions-heading = Sessions and devices
# "-before" and "-after" surround the username, shown in bold
sessions-intro-before = Where
sessions-intro-after = is signed in.
sessions-intro-sign-out = Signing a device out ends its access to Matrix at once.
# Shown in parentheses after the session's kind
sessions-this-browser = this browser
sessions-device = Device { $device }
# { $when } is a date and time, like 2025-01-31 14:05 UTC; { $ip } an IP address
sessions-last-active = Last active { $when }
sessions-last-active-from = Last active { $when } from { $ip }
sessions-signed-in = Signed in { $when }
sessions-sign-out = Sign out
sessions-hidden = And { $count } more, not shown.
sessions-kind = Kind
sessions-kind-browser = Browser
sessions-kind-application = Application
sessions-matrix-client = Matrix client
sessions-browser-name = Signed in to this service
sessions-device-id = Device ID
sessions-application = Application
sessions-signed-in-label = Signed in
sessions-last-active-label = Last active
sessions-when-from = { $when } from { $ip }
sessions-not-recorded = not recorded
sessions-user-agent = Browser or app
sessions-may = It may:
sessions-as-asked = As asked
sessions-device-name = Device name
sessions-rename = Rename
sessions-end-device = Sign out this device
sessions-end-session = Sign out this session
sessions-no-such-session = No such session
sessions-no-such-session-detail = None of your open sessions has this ID. It may have been signed out already.
sessions-no-such-device = No such device
sessions-no-such-device-detail = None of your open sessions uses this device. It may have been signed out already.
sessions-name-invalid = This name cannot be used
sessions-name-invalid-detail = A device name is 1 to { $max } characters, without line breaks or control characters.

## The account pages' navigation (account_nav.html)

nav-account = Account
nav-sessions = Sessions
nav-sign-out = Sign out

## Registration: the form (register.html)

register-create-an-account = Create an account
register-heading = Create an account on { $service_name }
register-username = Username
register-email = Email address
register-password = Password
register-password-confirm = Confirm password
register-token = Registration token
# "I agree to the" + link "terms of service": the checkbox's label, in two parts.
register-terms-before = I agree to the
register-terms-link = terms of service
register-create-account = Create account
register-have-account = Already have an account?
register-sign-in = Sign in

## Registration: what the form is told

register-closed = Registration is closed
register-closed-detail = This service does not let people create accounts themselves. Ask its administrator for one.
register-username-invalid = A username may only use lowercase letters, digits and . _ = - / + (at most 255).
register-passwords-differ = The passwords do not match.
register-token-required = A registration token is required.
register-captcha-missing = Complete the CAPTCHA to create an account.
register-captcha-wrong = The CAPTCHA was not solved. Please try again.
register-captcha-unavailable = The CAPTCHA cannot be checked right now. Please try again later.
register-homeserver-unreachable = The homeserver cannot be reached right now. Please try again later.
register-username-unavailable = This username is not available.
register-token-no-longer-usable = This registration token can no longer be used.
register-address-taken = This address is already used by an account here. Sign in, or recover that account.
register-finished-already = This registration is finished already.
register-code-expired-detail = Codes work for an hour, five tries at most, in the browser that filled the form. Fill it again to get a new one.

## Password recovery: asking for a link (recover.html, recover_sent.html)

recover-title = Forgot your password?
recover-intro = Type the email address of your account. If an account here uses it, a link to set a new password is sent there.
recover-send-link = Send a link
recover-back-to-sign-in = Back to sign in
recover-check-email = Check your email
# "If an account here uses" <address> ", a link to set a new password is on its way there."
recover-sent-before = If an account here uses
recover-sent-after = , a link to set a new password is on its way there.
recover-sent-validity = { $minutes ->
    [one] It works once, within one minute.
   *[other] It works once, within { $minutes } minutes.
}
# "Nothing arrived? Check the address, or" + link "ask again" + "."
recover-sent-retry-before = Nothing arrived? Check the address, or
recover-sent-retry-link = ask again
recover-sent-retry-after = .
recover-off = Password recovery is off
recover-off-detail = This service does not send links to set a new password. Ask its administrator for help.

## Password recovery: the link (recover_password.html)

recover-password-title = Set a new password
# "For the account of" <address> "."
recover-password-for-before = For the account of
recover-password-for-after = .
recover-new-password = New password
recover-new-password-confirm = Confirm the new password
recover-sign-out-everywhere = Sign out of every session of this account
recover-set-password = Set the password
recover-link-dead = This link does not work any more
recover-link-dead-detail = { $minutes ->
    [one] A recovery link works once, within one minute of being sent. Ask for a new one.
   *[other] A recovery link works once, within { $minutes } minutes of being sent. Ask for a new one.
}
recover-ask-new-link = Ask for a new link
recover-done-title = Your password is set
recover-done = Sign in with the new password.
recover-done-everywhere = Every session of the account has ended. Sign in with the new password.

## The sign-in page (login.html)

login-title = Sign in
login-heading = Sign in to { $service_name }
login-continue-with = Continue with { $provider }
login-or-password = Or sign in with your password:
login-username-or-email = Username or email address
login-username = Username
login-password = Password
login-forgot-password = Forgot your password?
login-no-account = No account yet?
login-create-account = Create one

## Why a sign-in with a password is refused

login-passwords-disabled = Password login is disabled
login-passwords-disabled-detail = This service does not accept passwords.
login-username-too-long = That username is too long.
login-wrong-credentials = Wrong username or password.
login-account-locked = This account is locked or deactivated.

## The page of someone already signed in (continue.html): "You are signed in as alice (@alice:example.com)."

continue-title = Signed in
continue-heading = You are signed in
continue-as = You are signed in as
continue-continue-as = Continue as { $username }
continue-sign-out = Sign out, to sign in as someone else

## Linking an identity provider's account to the account signed in (upstream.html)
## "You are signed in to { $service_name } as" is followed by the username and "."
## "Link the { $provider } account" is followed by the provider's account name (when
## known), then by upstream-link-question-end.

upstream-link-heading = Link your { $provider } account
upstream-link-signed-in-as = You are signed in to { $service_name } as
upstream-link-question = Link the { $provider } account
upstream-link-question-end = to it, so that you can sign in with { $provider } from now on?
upstream-link-accounts = Link the accounts
upstream-not-you = Not you? Sign out

## Creating an account through an identity provider (upstream.html)
## "You signed in with { $provider }" [ "as" <account name> ] ". " upstream-creates-account
## upstream-mxid <Matrix ID> upstream-mxid-end
## upstream-use-displayname <display name> upstream-use-displayname-end
## upstream-add-email <email address> upstream-add-email-end
## upstream-agree-to <link: upstream-terms-of-service>

upstream-register-heading = Create your account
upstream-signed-in-with = You signed in with { $provider }
upstream-signed-in-as = as
upstream-creates-account = This creates an account on { $service_name } for it.
upstream-mxid = Your Matrix ID will be
upstream-mxid-end = , as { $provider } says.
upstream-use-displayname = Use
upstream-use-displayname-end = as your display name
upstream-displayname-label = Display name:
upstream-add-email = Add
upstream-add-email-end = to your account
upstream-email-label = Email address:
upstream-agree-to = I agree to the
upstream-terms-of-service = terms of service
upstream-create-account = Create account
upstream-have-account = Already have an account?
upstream-sign-in-to-link = Sign in to link it

## Failures of a sign-in through an identity provider
## { $detail } is a technical detail, in English, or the provider's own words.

upstream-too-many-attempts = Too many attempts
upstream-unknown-provider = Unknown sign-in method
upstream-unknown-provider-detail = This identity provider is not (or no longer) offered here.
upstream-misconfigured = This sign-in method is misconfigured
upstream-misconfigured-detail = Tell the administrator: { $detail }.
upstream-secret-unreadable = its client secret cannot be read
upstream-public-base-unjoinable = http.public_base cannot be joined
upstream-failed = Signing in with { $provider } did not work
upstream-error-unreachable = The identity provider could not be reached: { $detail }. Please try again.
upstream-error-configuration = The identity provider is misconfigured: { $detail }. Please try again.
upstream-error-token-refused = The identity provider refused to exchange the code: { $detail }. Please try again.
upstream-error-id-token = The identity provider's ID token was refused: { $detail }. Please try again.
upstream-error-userinfo = The identity provider's userinfo answer was refused: { $detail }. Please try again.
upstream-error-logout-token = The logout token was refused: { $detail }. Please try again.
upstream-cancelled = The sign-in was cancelled or refused at the provider ({ $detail }).
upstream-provider-error = The provider answered with an error ({ $detail }). Please try again.
upstream-stale-trip = This sign-in cannot be completed
upstream-stale-trip-detail = It is unknown, was already used, expired, or was started in another browser. Start again from the sign-in page.
upstream-account-locked = This account is locked or deactivated
upstream-account-locked-detail = Ask the administrator of this service.
upstream-username-exists = An account with this username already exists
upstream-username-exists-detail = { $username } is taken here, and your { $provider } account cannot be linked to it. Ask the administrator.
upstream-invalid-username = `{ $username }` cannot be a username: use lowercase letters, digits and . _ = - / + (at most 255).

## Allowing an application (the consent page, also shown for a device's request)

consent-title = Allow access
consent-heading = Allow { $client } to access your account?
# Followed by the username in bold, then "."; also on the Matrix client sign-in page.
consent-signed-in-as = You are signed in as
# Followed by the application's address as a link, then ".".
consent-client-claims = It says it is
consent-unverified = Unverified application.
consent-unverified-detail = It registered itself with { $service }: its name and address above are its own claims, not checked by anyone.
consent-unverified-device = Allow it only if you started this sign-in yourself, on a device in front of you: someone who sent you a code to enter here is trying to get into your account.
# Followed by the list of what the application asks for (see "scope-*").
consent-asks-for = It asks for:
consent-as-asked = As asked
consent-allow = Allow
consent-deny = Deny
consent-expired = This request has expired
consent-expired-detail = Go back to the application and start again.

## Connecting a device with the code it shows, and its answer

device-link-title = Connect a device
device-link-intro = Enter the code the device shows.
device-link-code = Code
device-code-unknown = This code is unknown or has expired.
device-start-again = Start again on the device.
device-connected = Device connected
device-connected-detail = You can go back to your device.
device-not-connected = Device not connected
device-not-connected-detail = The device was refused access to your account.

## A Matrix client's single sign-on

compat-title = Continue to your Matrix client
compat-heading = Sign in to a Matrix client?
# Followed by the address the login goes to.
compat-intro = A Matrix client asked to sign in to your account. If you go on, a login for your account is sent to:
compat-check-address = Continue only if this is the address of the app you are signing in to.
compat-not-you = If you did not start this, close this page.
compat-expired = This sign-in link has expired
compat-expired-detail = Start again from your Matrix client.

## An application's sign-in request

authorize-too-many-requests = Too many requests
authorize-bad-request = The application that sent you here made a request this service cannot accept.
